package query

import (
	"bytes"
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3.1 document of the HTTP API. A test checks that
// it lists exactly the served routes with exactly their parameters, and
// validates real answers against its schemas.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 document of the HTTP API.
func OpenAPI() []byte { return bytes.Clone(openAPI) }

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	writeBody(w, http.StatusOK, bytes.TrimSpace(openAPI))
}

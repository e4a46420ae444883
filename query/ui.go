package query

import (
	"embed"
	"io/fs"
	"net/http"
)

// uiFiles is the lineage page: plain HTML, CSS and JavaScript embedded in
// the binary, loading nothing from elsewhere, so it works offline.
//
//go:embed ui
var uiFiles embed.FS

// uiHandler serves the lineage page under /ui/. The page reads through the
// /v1 API with the same token and read-your-writes rules as any client.
func uiHandler() http.Handler {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded directory is always there
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Only this origin: no CDN, no inline script, no framing.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

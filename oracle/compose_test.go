package oracle_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestComposeFile validates ../docker-compose.yml with docker-compose
// config (static: no Docker engine is needed) and checks that it wires
// cairn to Oracle Database Free.
func TestComposeFile(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose is not installed (Debian: apt-get install docker-compose); skipping the docker-compose.yml check")
	}
	cmd := exec.Command(bin, "--project-directory", "..", "-f", "../docker-compose.yml", "config")
	cmd.Env = append(os.Environ(), "COMPOSE_PROJECT_NAME=cairn-test")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	for _, want := range []string{
		"nats:", "oracle:", "writer:", "query:", "agent:",
		"gvenzl/oracle-free", "healthcheck.sh", "APP_USER: cairn", "1521:1521", "ORACLE_DSN: oracle:1521/FREEPDB1",
		"/etc/cairn/nats/compose.conf", "CAIRN_QUERY_TOKEN", "condition: service_healthy",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("docker-compose config has no %q", want)
		}
	}
	if _, err := os.Stat("../deploy/nats/compose.conf"); err != nil {
		t.Errorf("the NATS config the compose file names: %v", err)
	}
}

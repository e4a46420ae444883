package faults

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ReadyTimeout bounds how long a server may take to accept connections.
const ReadyTimeout = 60 * time.Second

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// WaitListening waits until something accepts TCP connections on port.
func WaitListening(tb testing.TB, port int, timeout time.Duration, alive func(testing.TB)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if alive != nil {
			alive(tb)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("nothing listens on port %d after %v", port, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RewriteConf returns a server configuration with every "127.0.0.1:<old>"
// address replaced by "127.0.0.1:<new>" per ports. It fails tb if an old
// port does not occur, so that a changed file cannot silently keep its
// fixed ports.
func RewriteConf(tb testing.TB, conf string, ports map[int]int) string {
	tb.Helper()
	for old := range ports {
		from := fmt.Sprintf("127.0.0.1:%d", old)
		if !strings.Contains(conf, from) {
			tb.Fatalf("configuration has no %s to rewrite:\n%s", from, conf)
		}
		// Placeholders first, so that a new port equal to another old one
		// is not rewritten twice.
		conf = strings.ReplaceAll(conf, from, fmt.Sprintf("127.0.0.1:{{%d}}", old))
	}
	for old, port := range ports {
		conf = strings.ReplaceAll(conf, fmt.Sprintf("{{%d}}", old), strconv.Itoa(port))
	}
	return conf
}

// NATSServer is a nats-server process.
type NATSServer struct {
	*Process
	// Port is the client port.
	Port int
}

// URL returns the client URL.
func (s *NATSServer) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.Port) }

// StartNATS writes conf to dir/<name>.conf and runs bin (a nats-server
// binary) with it from dir, so that relative store directories land in
// dir. It returns once the client port accepts connections.
func StartNATS(tb testing.TB, bin, dir, name, conf string, port int) *NATSServer {
	tb.Helper()
	path := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	s := &NATSServer{Process: Start(tb, ProcessConfig{Name: name, Bin: bin, Args: []string{"-c", path}, Dir: dir}), Port: port}
	s.WaitReady(tb)
	return s
}

// WaitReady waits until the client port accepts connections.
func (s *NATSServer) WaitReady(tb testing.TB) {
	tb.Helper()
	WaitListening(tb, s.Port, ReadyTimeout, s.CheckAlive)
}

// Postgres is a private PostgreSQL instance: its own data directory, port
// and processes, so that a scenario may stop it without touching any
// other database.
type Postgres struct {
	Port    int
	binDir  string
	dataDir string
	logFile string
	cred    *syscall.Credential
}

// StartPostgres creates a cluster with binDir/initdb (e.g.
// /usr/lib/postgresql/15/bin) under dir (a test's temporary directory) and
// starts it on a free port. PostgreSQL refuses to run as root; as root the
// instance runs as the "postgres" user. It is stopped when the test ends.
func StartPostgres(tb testing.TB, binDir, dir string) *Postgres {
	tb.Helper()
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			tb.Fatalf("private PostgreSQL: %v", err)
		}
	}
	p := &Postgres{Port: FreePort(tb), binDir: binDir}
	home := filepath.Join(dir, "pg")
	if err := os.Mkdir(home, 0o700); err != nil {
		tb.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Fatalf("private PostgreSQL: running as root needs a \"postgres\" user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(home, uid, gid); err != nil {
			tb.Fatal(err)
		}
		// The user must be able to reach home through the test's
		// directories, which are private to root.
		for d := filepath.Dir(home); d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o711); err != nil {
				tb.Fatal(err)
			}
		}
	}
	p.dataDir, p.logFile = filepath.Join(home, "data"), filepath.Join(home, "postgres.log")
	p.run(tb, "initdb", "-D", p.dataDir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	p.Start(tb)
	tb.Cleanup(func() {
		if p.running() {
			p.run(tb, "pg_ctl", "stop", "-D", p.dataDir, "-m", "immediate", "-w")
		}
	})
	return p
}

// URL returns the connection URL of the instance's "postgres" database.
func (p *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.Port)
}

// Start starts the instance and waits until it accepts connections.
func (p *Postgres) Start(tb testing.TB) {
	tb.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c max_connections=60", p.Port)
	p.run(tb, "pg_ctl", "start", "-D", p.dataDir, "-l", p.logFile, "-w", "-t", "60", "-o", opts)
	WaitListening(tb, p.Port, ReadyTimeout, nil)
}

// Stop stops the instance at once, as a crash would (pg_ctl stop -m
// immediate): open connections drop, uncommitted transactions are lost,
// committed ones are recovered at the next start.
func (p *Postgres) Stop(tb testing.TB) {
	tb.Helper()
	p.run(tb, "pg_ctl", "stop", "-D", p.dataDir, "-m", "immediate", "-w")
}

func (p *Postgres) running() bool {
	_, err := os.Stat(filepath.Join(p.dataDir, "postmaster.pid"))
	return err == nil
}

func (p *Postgres) run(tb testing.TB, name string, args ...string) {
	tb.Helper()
	cmd := exec.Command(filepath.Join(p.binDir, name), args...)
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	cmd.Dir = filepath.Dir(p.dataDir)
	cmd.Env = append(CleanEnv(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		logText, _ := os.ReadFile(p.logFile)
		tb.Fatalf("private PostgreSQL: %s %s: %v\n%s\nserver log:\n%s", name, strings.Join(args, " "), err, out, logText)
	}
}

package agent

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestLogLevelAtRuntime changes the running agent's log level through the
// admin API and refuses a bad one.
func TestLogLevelAtRuntime(t *testing.T) {
	if testing.Short() {
		t.Skip("process test: not in -short")
	}
	p := startProcessEnv(t, []string{"SHOAL_LOG_LEVEL=info"}, "--data-dir", t.TempDir(), "--p2p=false", "--serf=false")
	call := func(method, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+p.admin+"/loglevel", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	for _, tc := range []struct {
		method, body string
		code         int
		want         string
	}{
		{"GET", "", 200, "info"},
		{"PUT", "debug", 200, "debug"},
		{"GET", "", 200, "debug"},
		{"PUT", "loud", 400, "log.level"},
		{"GET", "", 200, "debug"},
	} {
		code, got := call(tc.method, tc.body)
		if code != tc.code || !strings.Contains(got, tc.want) {
			t.Fatalf("%s /loglevel %q: %d %q, want %d %q", tc.method, tc.body, code, got, tc.code, tc.want)
		}
	}
}

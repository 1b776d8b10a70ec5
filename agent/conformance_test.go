package agent

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestConformance runs the OCI distribution-spec conformance suite against
// a fresh agent: every API and data setting at its default, plus the
// optional upload-cancel, digest-header and tag-parameter workflows.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite: not in -short")
	}
	bin := tool(t, "conformance")
	a := startAgent(t, "")
	results := t.TempDir()
	cmd := exec.CommandContext(t.Context(), bin)
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+a.RegistryAddr(),
		"OCI_TLS=disabled",
		"OCI_RESULTS_DIR="+results,
		// Beyond the defaults: optional features the agent also supports.
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_BLOBS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_TAG_PARAM=true",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	text := out.String()
	count := func(label string) int {
		m := regexp.MustCompile(`(?m)^\s*` + label + `\.*:\s+(\d+)\s*$`).FindStringSubmatch(text)
		if m == nil {
			return -1
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	pass, fail, errs := count("Pass"), count("FAIL"), count("Error")
	t.Logf("conformance: %d Pass, %d FAIL, %d Error", pass, fail, errs)
	if runErr != nil || fail != 0 || errs != 0 || pass <= 0 {
		var failing []string
		for _, line := range strings.Split(text, "\n") {
			if strings.HasSuffix(strings.TrimSpace(line), "FAIL") || strings.Contains(line, "Error:") {
				failing = append(failing, line)
			}
		}
		t.Fatalf("conformance failed (exit: %v):\n%s\n--- full output ---\n%s", runErr, strings.Join(failing, "\n"), text)
	}
}

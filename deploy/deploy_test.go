package deploy

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/agent/config"
)

const unitFile = "systemd/shoal.service"

// unitSettings parses a unit file into "Section.Key" → values.
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not key=value: %q", path, line)
			}
			settings[section+"."+k] = append(settings[section+"."+k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return settings
}

// TestUnitSettings pins the settings the agent relies on: notify protocol,
// watchdog, state directory, drain time and the sandbox.
func TestUnitSettings(t *testing.T) {
	t.Parallel()
	got := unitSettings(t, unitFile)
	want := map[string]string{
		"Service.Type":                    "notify",
		"Service.NotifyAccess":            "main",
		"Service.ExecStart":               "/usr/local/bin/shoal agent --config /etc/shoal/config.yaml",
		"Service.EnvironmentFile":         "-/etc/shoal/env",
		"Service.WatchdogSec":             "30s",
		"Service.StateDirectory":          "shoal",
		"Service.Restart":                 "on-failure",
		"Service.RestartSec":              "2s",
		"Service.TimeoutStopSec":          "90s",
		"Service.KillSignal":              "SIGTERM",
		"Service.LimitNOFILE":             "1048576",
		"Service.DynamicUser":             "yes",
		"Service.ProtectSystem":           "strict",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.NoNewPrivileges":         "yes",
		"Service.CapabilityBoundingSet":   "",
		"Service.AmbientCapabilities":     "",
		"Service.ProtectKernelTunables":   "yes",
		"Service.ProtectControlGroups":    "yes",
		"Service.RestrictSUIDSGID":        "yes",
		"Service.LockPersonality":         "yes",
		"Service.MemoryDenyWriteExecute":  "yes",
		"Service.RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
		"Service.SystemCallArchitectures": "native",
		"Install.WantedBy":                "multi-user.target",
	}
	for k, v := range want {
		if vals := got[k]; len(vals) != 1 || vals[0] != v {
			t.Errorf("%s = %q, want exactly %q", k, vals, v)
		}
	}
	if _, ok := got["Service.ReadWritePaths"]; ok {
		t.Error("ReadWritePaths is set: StateDirectory is the only writable path the agent needs")
	}
}

// systemdAnalyze returns the systemd-analyze path, skipping the test when
// it is missing, except in CI, where .ci/tools.sh installs it.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is missing in CI (.ci/tools.sh installs the systemd package)")
		}
		t.Skip("systemd-analyze not installed (Debian package systemd)")
	}
	return p
}

// verify runs systemd-analyze verify on unit, a copy of the shipped unit
// whose ExecStart binary is a stand-in (verify insists that it exists and
// is executable). systemd-analyze exits 0 even for unknown keys and bad
// values, so any output is a failure too.
func verify(t *testing.T, analyze, unit string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	standIn := filepath.Join(dir, "shoal")
	if err := os.WriteFile(standIn, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit = strings.Replace(unit, "ExecStart=/usr/local/bin/shoal ", "ExecStart="+standIn+" ", 1)
	if !strings.Contains(unit, "ExecStart="+standIn+" agent") {
		t.Fatal("the unit's ExecStart is not /usr/local/bin/shoal agent …")
	}
	path := filepath.Join(dir, "shoal.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", path)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestUnitVerifies(t *testing.T) {
	t.Parallel()
	analyze := systemdAnalyze(t)
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := verify(t, analyze, string(unit)); err != nil || out != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
	// The check has teeth: a misspelt directive is reported.
	broken := strings.Replace(string(unit), "ProtectSystem=strict", "ProtectSystem=strict\nProtectSytem=strict", 1)
	if out, err := verify(t, analyze, broken); err == nil && out == "" {
		t.Error("systemd-analyze verify did not report an unknown key; the test above proves nothing")
	}
}

// TestDefaultConfigLoads loads deploy/shoal.yaml with the agent's own
// loader, as `shoal agent --config /etc/shoal/config.yaml` would, and again
// with every commented-out example enabled.
func TestDefaultConfigLoads(t *testing.T) { // not parallel: sets STATE_DIRECTORY
	state := t.TempDir()
	t.Setenv("STATE_DIRECTORY", state)
	raw, err := os.ReadFile("shoal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }

	cfg, err := config.Load([]string{"--config", "shoal.yaml"}, noEnv, io.Discard)
	if err != nil {
		t.Fatalf("shoal.yaml: %v", err)
	}
	def := config.Default()
	if def.DataDir = state; def.Finish() != nil {
		t.Fatal("config.Default().Finish failed")
	}
	if !reflect.DeepEqual(cfg, def) {
		t.Errorf("shoal.yaml is not the defaults:\n got %+v\nwant %+v", cfg, def)
	}

	// Enable the commented-out examples: top-level "# key: value" lines and
	// the "#   - item" lines under them.
	var b strings.Builder
	for line := range strings.Lines(string(raw)) {
		rest, ok := strings.CutPrefix(line, "# ")
		if ok && (isKeyLine(rest) || strings.HasPrefix(strings.TrimLeft(rest, " "), "- ")) {
			line = rest
		}
		b.WriteString(line)
	}
	enabled := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(enabled, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load([]string{"--config", enabled}, noEnv, io.Discard); err != nil {
		t.Errorf("shoal.yaml with its examples enabled: %v\n%s", err, b.String())
	}
}

// isKeyLine reports whether s looks like "lower_case_key: value".
func isKeyLine(s string) bool {
	k, _, ok := strings.Cut(s, ":")
	if !ok || k == "" {
		return false
	}
	for _, r := range k {
		if (r < 'a' || r > 'z') && r != '_' {
			return false
		}
	}
	return true
}

// TestDefaultConfigDocumentsEveryKey fails when config.Config gains a key
// that deploy/shoal.yaml does not mention, as a setting or as a
// commented-out example, so the shipped file keeps documenting every key.
func TestDefaultConfigDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("shoal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(typ reflect.Type, path, indent string)
	walk = func(typ reflect.Type, path, indent string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if key == "" || key == "-" {
				continue
			}
			if !bytes.Contains(raw, []byte("\n"+indent+key+":")) && !bytes.Contains(raw, []byte("\n"+indent+"# "+key+":")) {
				t.Errorf("deploy/shoal.yaml does not document %s%s: add it with its default and a comment (commented out if the default is derived)", path, key)
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, path+key+".", indent+"  ")
			}
		}
	}
	walk(reflect.TypeFor[config.Config](), "", "")
}

package mirror

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDockerDaemonJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing string
		mirror   string
		want     string // "" with wantSame: existing comes back unchanged
		wantSame bool
	}{
		{
			name:   "empty file",
			mirror: DefaultMirror,
			want:   "{\n  \"registry-mirrors\": [\n    \"http://127.0.0.1:5000\"\n  ]\n}\n",
		},
		{
			name:     "keeps other keys in order, mirror first",
			existing: `{"log-driver":"journald","registry-mirrors":["https://mirror.gcr.io"],"log-opts":{"tag":"{{.Name}}"},"live-restore":true}`,
			mirror:   DefaultMirror,
			want: `{
  "log-driver": "journald",
  "registry-mirrors": [
    "http://127.0.0.1:5000",
    "https://mirror.gcr.io"
  ],
  "log-opts": {
    "tag": "{{.Name}}"
  },
  "live-restore": true
}
`,
		},
		{
			name:     "already there with a trailing slash",
			existing: `{"registry-mirrors": ["http://127.0.0.1:5000/"]}`,
			mirror:   DefaultMirror,
			wantSame: true,
		},
		{
			name:     "loopback needs no insecure-registries",
			existing: `{"insecure-registries": ["10.0.0.1:5000"]}`,
			mirror:   "http://[::1]:5000",
			want:     "{\n  \"insecure-registries\": [\n    \"10.0.0.1:5000\"\n  ],\n  \"registry-mirrors\": [\n    \"http://[::1]:5000\"\n  ]\n}\n",
		},
		{
			name:   "plain http elsewhere is marked insecure",
			mirror: "http://shoal.internal:5000",
			want:   "{\n  \"registry-mirrors\": [\n    \"http://shoal.internal:5000\"\n  ],\n  \"insecure-registries\": [\n    \"shoal.internal:5000\"\n  ]\n}\n",
		},
		{
			name:   "https elsewhere is not",
			mirror: "https://shoal.internal:5000",
			want:   "{\n  \"registry-mirrors\": [\n    \"https://shoal.internal:5000\"\n  ]\n}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DockerDaemonJSON([]byte(tt.existing), tt.mirror)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantSame {
				if string(got) != tt.existing {
					t.Errorf("got %q, want the input unchanged", got)
				}
				return
			}
			if string(got) != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("invalid JSON: %s", got)
			}
			again, err := DockerDaemonJSON(got, tt.mirror)
			if err != nil || string(again) != string(got) {
				t.Errorf("second merge changed it (%v):\n%s", err, again)
			}
		})
	}
}

func TestDockerDaemonJSONRejects(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, existing, mirror, wantErr string }{
		{"not json", `{"a":`, DefaultMirror, "daemon.json"},
		{"array", `[1]`, DefaultMirror, "not a JSON object"},
		{"trailing data", `{} {}`, DefaultMirror, "after the JSON object"},
		{"duplicate key", `{"a":1,"a":2}`, DefaultMirror, "twice"},
		{"mirrors not a list", `{"registry-mirrors":"http://x"}`, DefaultMirror, "registry-mirrors"},
		{"insecure not a list", `{"insecure-registries":5}`, "http://10.1.1.1:5000", "insecure-registries"},
		{"bad mirror", `{}`, "127.0.0.1:5000", "mirror"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DockerDaemonJSON([]byte(tt.existing), tt.mirror)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("DockerDaemonJSON(%q) = %q, %v; want an error mentioning %q", tt.existing, got, err, tt.wantErr)
			}
		})
	}
}

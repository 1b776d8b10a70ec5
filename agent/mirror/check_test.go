package mirror

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestCheckContainerdConfig(t *testing.T) {
	t.Parallel()
	debianDefault, err := os.ReadFile("testdata/containerd-1.6-default.toml")
	if err != nil {
		t.Fatal(err)
	}
	const (
		v3Images  = "plugins.'io.containerd.cri.v1.images'"
		v3Path    = v3Images + ".registry.config_path"
		v2Path    = `plugins."io.containerd.grpc.v1.cri".registry.config_path`
		localPull = v3Images + ".use_local_image_pull"
		v2Mirrors = `plugins."io.containerd.grpc.v1.cri".registry.mirrors`
		advisory  = "(advisory)"
	)
	tests := []struct {
		name   string
		config string
		want   []string // "key" or "key (advisory)", in order
	}{
		{
			name: "v3 as shoal wants it",
			config: `version = 3
[plugins.'io.containerd.cri.v1.images']
  use_local_image_pull = true
[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = '/etc/containerd/certs.d'
`,
			want: nil,
		},
		{
			name: "v3 single directory, transfer service",
			config: `version = 3
[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = '/etc/containerd/certs.d/'
`,
			want: []string{localPull + " " + advisory},
		},
		{
			name: "v3 unset: 2.2+ default list, transfer service",
			config: `version = 3
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
`,
			want: []string{v3Path, localPull},
		},
		{
			name: "v3 EKS list, transfer service",
			config: `version = 3
[plugins."io.containerd.cri.v1.images".registry]
  config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"
`,
			want: []string{localPull},
		},
		{
			name: "v3 EKS list, local pull",
			config: `version = 3
[plugins."io.containerd.cri.v1.images"]
  use_local_image_pull = true
[plugins."io.containerd.cri.v1.images".registry]
  config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"
`,
			want: nil,
		},
		{
			name: "v3 other directory",
			config: `version = 3
[plugins.'io.containerd.cri.v1.images']
  use_local_image_pull = true
[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = '/etc/docker/certs.d'
`,
			want: []string{v3Path},
		},
		{
			name:   "debian containerd 1.6 default",
			config: string(debianDefault),
			want:   []string{v2Path, localPull + " " + advisory},
		},
		{
			name: "v2 set, local pull for 2.x too",
			config: `version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
[plugins."io.containerd.cri.v1.images"]
  use_local_image_pull = true
`,
			want: nil,
		},
		{
			name: "v2 mirrors and config_path",
			config: `version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
  endpoint = ["https://mirror.example"]
[plugins."io.containerd.cri.v1.images"]
  use_local_image_pull = true
`,
			want: []string{v2Mirrors},
		},
		{
			name: "v2 mirrors only",
			config: `version = 2
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
  endpoint = ["https://mirror.example"]
[plugins."io.containerd.cri.v1.images"]
  use_local_image_pull = true
`,
			want: []string{v2Path},
		},
		{
			name:   "empty file is version 1",
			config: "",
			want:   []string{"version " + advisory, "plugins.cri.registry.config_path"},
		},
		{
			name: "version 1 set",
			config: `[plugins.cri.registry]
  config_path = "/etc/containerd/certs.d"
`,
			want: []string{"version " + advisory},
		},
		{
			name:   "does not parse",
			config: "version = \n[[",
			want:   []string{"config.toml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ws := CheckContainerdConfig([]byte(tt.config))
			var got []string
			for _, w := range ws {
				k := w.Key
				if w.Advisory {
					k += " " + advisory
				}
				got = append(got, k)
				if w.Message == "" || !strings.Contains(w.String(), w.Key+": ") {
					t.Errorf("warning %+v renders as %q", w, w.String())
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("warnings %q, want %q\n%v", got, tt.want, ws)
			}
		})
	}
}

// TestCheckContainerdConfigFixesApply applies each warning's Fix to the
// config it came from and checks that the warnings it fixes go away.
func TestCheckContainerdConfigFixesApply(t *testing.T) {
	t.Parallel()
	config := "version = 3\n"
	for range 3 {
		ws := CheckContainerdConfig([]byte(config))
		if len(ws) == 0 {
			return
		}
		for _, w := range ws {
			config += "\n" + w.Fix + "\n"
		}
	}
	t.Errorf("fixes did not converge; config now:\n%s\nwarnings: %v", config, CheckContainerdConfig([]byte(config)))
}

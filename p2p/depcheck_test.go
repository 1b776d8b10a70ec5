package p2p

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDependencies keeps p2p independent of the agent's other packages:
// blobs come in through BlobSource, not cas.
func TestDependencies(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/shoal-dev/shoal/") {
				t.Errorf("%s imports %s: p2p must not depend on other Shoal packages", name, path)
			}
			if strings.Contains(path, "prometheus") {
				t.Errorf("%s imports %s: metrics are exported by the agent from Stats", name, path)
			}
		}
	}
}

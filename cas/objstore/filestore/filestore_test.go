package filestore_test

import (
	"testing"

	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/filestore"
	"github.com/shoal-dev/shoal/cas/objstore/objstoretest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newStore(t *testing.T) *filestore.Store {
	t.Helper()
	s, err := filestore.New(t.TempDir())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	objstoretest.Run(t, func(t *testing.T) objstore.Store { return newStore(t) })
}

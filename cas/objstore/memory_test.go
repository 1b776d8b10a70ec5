package objstore_test

import (
	"testing"

	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/objstoretest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	objstoretest.Run(t, func(*testing.T) objstore.Store { return objstore.NewMemory() })
}

package locks

import (
	"flag"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The fleet tests spend their time waiting on lease, grace and gossip
	// timers, not on the CPU: run more of them at once than GOMAXPROCS
	// unless -parallel says otherwise.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "6")
	}
	goleak.VerifyTestMain(m)
}

//go:build !race

package agent

// TestSwarmSixAgents moves the full 512 MiB blob without the race
// detector; the origin hands it out in about 16 s.
const (
	swarmBlobSize   = 512 << 20
	swarmOriginRate = 32 << 20 // bytes per second
)

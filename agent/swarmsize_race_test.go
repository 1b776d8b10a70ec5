//go:build race

package agent

// Under -race on two cores the agent package's tests already take
// minutes: TestSwarmSixAgents moves 64 MiB, which the origin hands out in
// about 8 s.
const (
	swarmBlobSize   = 64 << 20
	swarmOriginRate = 8 << 20 // bytes per second
)

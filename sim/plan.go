package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Plan is a scenario resolved by its seed: the nodes and their links, the
// images' bytes, and every event's concrete nodes. Two plans of one
// scenario and seed are identical (Fingerprint says so in one string).
type Plan struct {
	Scenario *Scenario
	Seed     uint64
	Nodes    []NodeSpec
	Images   []*GenImage
	Events   []PlannedEvent
}

// NodeSpec is one host of the fleet.
type NodeSpec struct {
	Name  string
	Group string
	// Link is the host's link speed each way, at full size.
	Link Bandwidth
}

// Blob is one generated blob.
type Blob struct {
	Digest    digest.Digest
	MediaType string
	Data      []byte // the simulated (scaled) bytes
}

// GenImage is a generated image: config, layers and manifest.
type GenImage struct {
	Name, Repo, Tag string
	Config          Blob
	Layers          []Blob
	Manifest        Blob
	Pushed          bool
}

// Bytes is the total size of the image's blobs as simulated.
func (im *GenImage) Bytes() int64 {
	n := int64(len(im.Config.Data) + len(im.Manifest.Data))
	for _, l := range im.Layers {
		n += int64(len(l.Data))
	}
	return n
}

// PlannedEvent is an event with its selectors resolved.
type PlannedEvent struct {
	At     time.Duration `json:"at"`
	Action string        `json:"action"`
	// Nodes are node names, or "proxy:gNN" for a group's proxy at the time.
	Nodes  []string `json:"nodes,omitempty"`
	Image  string   `json:"image,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// NewPlan resolves s with seed (0: the scenario's own seed).
func NewPlan(s *Scenario, seed uint64) (*Plan, error) {
	if seed == 0 {
		seed = s.Seed
	}
	p := &Plan{Scenario: s, Seed: seed}
	rng := newRand(seed, 0)
	for g := range s.Groups {
		for n := range s.NodesPerGroup {
			p.Nodes = append(p.Nodes, NodeSpec{Name: NodeName(g, n), Group: GroupName(g), Link: s.Links.Host})
		}
	}
	// Slow hosts: a seeded shuffle, then consecutive slices of it.
	order := rng.Perm(len(p.Nodes))
	next := 0
	for _, sh := range s.SlowHosts {
		k := int(sh.Fraction*float64(len(p.Nodes)) + 0.5)
		for ; k > 0 && next < len(order); k-- {
			p.Nodes[order[next]].Link = sh.Bandwidth
			next++
		}
	}
	for i, im := range s.Images {
		gi, err := generateImage(im, s.Scale, seed, i)
		if err != nil {
			return nil, err
		}
		p.Images = append(p.Images, gi)
	}
	for i, e := range s.Events {
		pe := PlannedEvent{At: e.At.D(), Action: e.Action, Image: e.Image, Groups: slices.Clone(e.Groups)}
		erng := newRand(seed, uint64(i)+1)
		seen := map[string]bool{}
		for _, sel := range e.Nodes {
			for _, name := range p.resolve(sel, erng) {
				if !seen[name] {
					seen[name] = true
					pe.Nodes = append(pe.Nodes, name)
				}
			}
		}
		p.Events = append(p.Events, pe)
	}
	return p, nil
}

// resolve expands a (validated) selector.
func (p *Plan) resolve(sel string, rng *rand.Rand) []string {
	kind, arg, _ := strings.Cut(sel, ":")
	switch {
	case sel == "all":
		return p.names(func(NodeSpec) bool { return true })
	case kind == "group":
		return p.names(func(n NodeSpec) bool { return n.Group == arg })
	case kind == "proxy" || sel == "down":
		return []string{sel}
	case kind == "random":
		count, scope, _ := strings.Cut(arg, "@")
		k, _ := strconv.Atoi(count)
		pool := p.names(func(NodeSpec) bool { return true })
		if scope != "" {
			pool = p.resolve(scope, rng)
		}
		rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		return pool[:min(k, len(pool))]
	}
	return []string{sel}
}

func (p *Plan) names(keep func(NodeSpec) bool) []string {
	var out []string
	for _, n := range p.Nodes {
		if keep(n) {
			out = append(out, n.Name)
		}
	}
	return out
}

// Image returns the generated image called name.
func (p *Plan) Image(name string) *GenImage {
	for _, im := range p.Images {
		if im.Name == name {
			return im
		}
	}
	return nil
}

// Fingerprint is a digest of everything the seed decides: node links,
// image digests and the resolved schedule.
func (p *Plan) Fingerprint() string {
	type img struct {
		Name     string   `json:"name"`
		Manifest string   `json:"manifest"`
		Layers   []string `json:"layers"`
		Bytes    int64    `json:"bytes"`
	}
	v := struct {
		Nodes  []NodeSpec     `json:"nodes"`
		Images []img          `json:"images"`
		Events []PlannedEvent `json:"events"`
	}{Nodes: p.Nodes, Events: p.Events}
	for _, im := range p.Images {
		x := img{Name: im.Name, Manifest: im.Manifest.Digest.String(), Bytes: im.Bytes()}
		for _, l := range im.Layers {
			x.Layers = append(x.Layers, l.Digest.String())
		}
		v.Images = append(v.Images, x)
	}
	b, _ := json.Marshal(v) // plain data: cannot fail
	return digest.FromBytes(b).String()
}

// newRand returns a generator keyed by the seed and a stream number.
func newRand(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewChaCha8(key(seed, stream, 0)))
}

func key(seed, a, b uint64) [32]byte {
	var buf [24]byte
	binary.LittleEndian.PutUint64(buf[0:], seed)
	binary.LittleEndian.PutUint64(buf[8:], a)
	binary.LittleEndian.PutUint64(buf[16:], b)
	return sha256.Sum256(buf[:])
}

// generateImage makes the image's layers (sizes varied by the seed, summing
// to the scaled size), its config and its OCI manifest.
func generateImage(im Image, scale int, seed uint64, index int) (*GenImage, error) {
	repo, tag, _ := strings.Cut(im.Name, ":")
	total := int64(im.Size) / int64(scale)
	rng := newRand(seed, 1<<32+uint64(index))
	weights := make([]float64, im.Layers)
	var sum float64
	for i := range weights {
		weights[i] = 0.5 + rng.Float64()
		sum += weights[i]
	}
	gi := &GenImage{Name: im.Name, Repo: repo, Tag: tag, Pushed: im.Pushed}
	var used int64
	for i := range im.Layers {
		size := int64(float64(total) * weights[i] / sum)
		if i == im.Layers-1 {
			size = total - used
		}
		used += size
		data := make([]byte, size)
		_, _ = rand.NewChaCha8(key(seed, uint64(index)+1, uint64(i)+1)).Read(data)
		gi.Layers = append(gi.Layers, Blob{Digest: digest.FromBytes(data), Data: data,
			MediaType: "application/vnd.oci.image.layer.v1.tar"})
	}
	cfg := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}`, diffIDs(gi.Layers))
	gi.Config = Blob{Digest: digest.FromBytes(cfg), Data: cfg, MediaType: "application/vnd.oci.image.config.v1+json"}
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int64         `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{SchemaVersion: 2, MediaType: "application/vnd.oci.image.manifest.v1+json",
		Config: desc{gi.Config.MediaType, gi.Config.Digest, int64(len(cfg))}}
	for _, l := range gi.Layers {
		m.Layers = append(m.Layers, desc{l.MediaType, l.Digest, int64(len(l.Data))})
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", im.Name, err)
	}
	gi.Manifest = Blob{Digest: digest.FromBytes(mb), Data: mb, MediaType: m.MediaType}
	return gi, nil
}

func diffIDs(layers []Blob) string {
	ids := make([]string, len(layers))
	for i, l := range layers {
		ids[i] = strconv.Quote(l.Digest.String())
	}
	return strings.Join(ids, ",")
}

package locks

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
)

// Membership is what the lock service needs to know about the fleet. [Cluster]
// implements it over serf, [MemoryMembership] in memory.
type Membership interface {
	// Self returns the local member.
	Self() Member
	// Members returns every known member, including failed and left ones.
	Members() []Member
	// Changed returns a channel that is closed at the next membership change.
	Changed() <-chan struct{}
}

// TagSetter is implemented by a [Membership] that can change the local
// member's advertised tags. The lock service uses it to advertise its token
// epoch ([TagEpoch]).
type TagSetter interface {
	SetTag(key, value string) error
}

// notifier hands out a channel that is closed, and replaced, on every change.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// MemoryMembership is a membership list kept in memory and shared by every
// member that views it: all views change at once. It serves tests and the
// simulator. The zero value is ready to use.
type MemoryMembership struct {
	mu      sync.Mutex
	members map[string]Member
	changes notifier
}

var (
	_ Membership = memoryView{}
	_ TagSetter  = memoryView{}
)

// Set adds or replaces the member m.
func (mm *MemoryMembership) Set(m Member) {
	mm.mu.Lock()
	if mm.members == nil {
		mm.members = make(map[string]Member)
	}
	mm.members[m.Name] = m
	mm.mu.Unlock()
	mm.changes.notify()
}

// SetStatus changes the status of the member name, if known.
func (mm *MemoryMembership) SetStatus(name string, s Status) {
	mm.mu.Lock()
	m, ok := mm.members[name]
	if ok {
		m.Status = s
		mm.members[name] = m
	}
	mm.mu.Unlock()
	if ok {
		mm.changes.notify()
	}
}

// Members returns every member, sorted by name.
func (mm *MemoryMembership) Members() []Member {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	out := make([]Member, 0, len(mm.members))
	for _, m := range mm.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// View returns the membership as the member self sees it.
func (mm *MemoryMembership) View(self string) Membership { return memoryView{mm, self} }

type memoryView struct {
	mm   *MemoryMembership
	self string
}

func (v memoryView) Self() Member {
	v.mm.mu.Lock()
	defer v.mm.mu.Unlock()
	return v.mm.members[v.self]
}

func (v memoryView) Members() []Member        { return v.mm.Members() }
func (v memoryView) Changed() <-chan struct{} { return v.mm.changes.wait() }

// SetTag sets a tag of the viewing member.
func (v memoryView) SetTag(key, value string) error {
	v.mm.mu.Lock()
	m, ok := v.mm.members[v.self]
	if ok {
		tags := make(map[string]string, len(m.Tags)+1)
		for k, x := range m.Tags {
			tags[k] = x
		}
		tags[key] = value
		m.Tags = tags
		v.mm.members[v.self] = m
	}
	v.mm.mu.Unlock()
	if !ok {
		return fmt.Errorf("set tag: member %s unknown", v.self)
	}
	v.mm.changes.notify()
	return nil
}

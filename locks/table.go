package locks

import (
	"fmt"
	"slices"
	"time"
)

// epochShift is the number of low token bits that count grants within an
// owner epoch; the epoch (milliseconds) fills the bits above.
const epochShift = 22

// Holder identifies a lease holder: the member that asked and an ID unique
// to one acquisition.
type Holder struct {
	Node string `json:"node"`
	ID   string `json:"id"`
}

// Grant is one lease on a lock.
type Grant struct {
	Name    string
	Token   uint64
	Limit   int
	Holder  Holder
	TTL     time.Duration
	Expires time.Time
}

// Request asks the table for a lease.
type Request struct {
	Name   string
	Holder Holder
	// Limit is the semaphore size: at most Limit holders at once (1: a mutex).
	Limit int
	TTL   time.Duration
	// Queue makes a request that cannot be granted now wait in FIFO order.
	Queue bool
}

// Wake tells a queued request how its wait ended: with a Grant, or with Err.
type Wake struct {
	Holder Holder
	Name   string
	Grant  Grant
	Err    error
}

type lockState struct {
	limit   int
	holders []Grant
	waiters []Request
}

type graceEntry struct {
	until time.Time
	moved func(name string) bool // nil: every name
}

// Table is the lock table of one owner: leases, FIFO waiters, semaphores,
// fencing tokens and the failover grace period. It does no I/O and reads no
// clock: every method takes the current time, so it is deterministic. It is
// not safe for concurrent use.
type Table struct {
	locks map[string]*lockState
	epoch uint64
	last  uint64 // highest token issued or re-asserted
	grace []graceEntry
}

// NewTable returns an empty table. Call [Table.BeginGrace] before serving if
// the table takes over lock space that another owner may have granted.
func NewTable() *Table {
	return &Table{locks: make(map[string]*lockState)}
}

// BeginGrace starts a grace period until the given time for the names moved
// reports (nil: all names), and moves to a new epoch so that later tokens
// exceed any the previous owner issued: the new epoch is above the current
// one and at least minEpoch and the wall clock in milliseconds. It returns
// the new epoch.
func (t *Table) BeginGrace(now, until time.Time, minEpoch uint64, moved func(name string) bool) uint64 {
	t.epoch = max(uint64(now.UnixMilli()), t.epoch+1, minEpoch)
	t.last = max(t.last, t.epoch<<epochShift)
	t.grace = append(t.grace, graceEntry{until: until, moved: moved})
	return t.epoch
}

// Epoch returns the current token epoch.
func (t *Table) Epoch() uint64 { return t.epoch }

// RaiseEpoch moves to epoch e if it is above the current one, so that later
// tokens exceed those of an owner that advertised epoch e-1, and reports
// whether it moved.
func (t *Table) RaiseEpoch(e uint64) bool {
	if e <= t.epoch {
		return false
	}
	t.epoch = e
	t.last = max(t.last, e<<epochShift)
	return true
}

// InGrace reports whether name is in a grace period at now.
func (t *Table) InGrace(name string, now time.Time) bool {
	for _, g := range t.grace {
		if now.Before(g.until) && (g.moved == nil || g.moved(name)) {
			return true
		}
	}
	return false
}

// GraceUntil returns when the last grace period running at now ends (the
// zero time when none is).
func (t *Table) GraceUntil(now time.Time) time.Time {
	var until time.Time
	for _, g := range t.grace {
		if now.Before(g.until) && g.until.After(until) {
			until = g.until
		}
	}
	return until
}

// LastToken returns the highest token issued or re-asserted.
func (t *Table) LastToken() uint64 { return t.last }

// Held returns the current grants of name.
func (t *Table) Held(name string) []Grant {
	if l := t.locks[name]; l != nil {
		return slices.Clone(l.holders)
	}
	return nil
}

// Len returns the number of locks with holders or waiters.
func (t *Table) Len() int { return len(t.locks) }

func validate(name string, limit int, ttl time.Duration) error {
	if name == "" || len(name) > 512 {
		return fmt.Errorf("name of %d bytes: %w", len(name), ErrInvalid)
	}
	if limit < 1 {
		return fmt.Errorf("limit %d: %w", limit, ErrInvalid)
	}
	if ttl <= 0 {
		return fmt.Errorf("ttl %v: %w", ttl, ErrInvalid)
	}
	return nil
}

func (t *Table) state(name string, limit int) (*lockState, error) {
	l := t.locks[name]
	if l == nil {
		l = &lockState{limit: limit}
		t.locks[name] = l
	}
	if l.limit != limit {
		return nil, fmt.Errorf("lock %s has limit %d, asked %d: %w", name, l.limit, limit, ErrLimitMismatch)
	}
	return l, nil
}

// gc forgets a lock that has neither holders nor waiters.
func (t *Table) gc(name string) {
	if l := t.locks[name]; l != nil && len(l.holders) == 0 && len(l.waiters) == 0 {
		delete(t.locks, name)
	}
}

func (t *Table) grant(l *lockState, r Request, now time.Time) Grant {
	t.last++
	g := Grant{Name: r.Name, Token: t.last, Limit: l.limit, Holder: r.Holder, TTL: r.TTL, Expires: now.Add(r.TTL)}
	l.holders = append(l.holders, g)
	return g
}

// Acquire grants r at once, queues it (queued true, when r.Queue is set), or
// fails: ErrTimeout when the lock is busy, ErrGrace in a grace period. A
// holder asking again for a lock it holds gets its grant back, renewed (with
// a fresh token if others were granted since).
func (t *Table) Acquire(now time.Time, r Request) (g Grant, queued bool, err error) {
	if err := validate(r.Name, r.Limit, r.TTL); err != nil {
		return Grant{}, false, err
	}
	if l := t.locks[r.Name]; l != nil {
		for i, h := range l.holders {
			if h.Holder == r.Holder {
				// A retry whose first answer was lost. If anything was
				// granted since, reissue a fresh token so that the
				// holder, which starts using the lease only now, does
				// not present a token older than one already in use.
				if h.Token != t.last {
					t.last++
					l.holders[i].Token = t.last
				}
				l.holders[i].Expires = now.Add(h.TTL)
				return l.holders[i], false, nil
			}
		}
		if slices.ContainsFunc(l.waiters, func(w Request) bool { return w.Holder == r.Holder }) {
			return Grant{}, true, nil
		}
	}
	l, err := t.state(r.Name, r.Limit)
	if err != nil {
		return Grant{}, false, err
	}
	grace := t.InGrace(r.Name, now)
	if !grace && len(l.waiters) == 0 && len(l.holders) < l.limit {
		return t.grant(l, r, now), false, nil
	}
	if r.Queue {
		l.waiters = append(l.waiters, r)
		return Grant{}, true, nil
	}
	t.gc(r.Name)
	if grace {
		return Grant{}, false, fmt.Errorf("acquire %s: %w", r.Name, ErrGrace)
	}
	held := &HeldError{Name: r.Name}
	for _, h := range l.holders {
		if len(held.Holders) < maxHeldNames {
			held.Holders = append(held.Holders, h.Holder.Node)
		}
	}
	return Grant{}, false, held
}

// maxHeldNames bounds the holders a [HeldError] names.
const maxHeldNames = 16

// Cancel removes a queued request and reports whether it was still queued.
func (t *Table) Cancel(name string, h Holder) bool {
	l := t.locks[name]
	if l == nil {
		return false
	}
	i := slices.IndexFunc(l.waiters, func(w Request) bool { return w.Holder == h })
	if i < 0 {
		return false
	}
	l.waiters = slices.Delete(l.waiters, i, i+1)
	t.gc(name)
	return true
}

// Renew extends the lease a, or adopts it when a's lock is in a grace period
// and a fits (its token is free and the limit leaves room): that is how a
// holder re-asserts a lease to a new owner. Otherwise it fails with
// ErrNotHeld.
func (t *Table) Renew(now time.Time, a Grant) (Grant, error) {
	if err := validate(a.Name, a.Limit, a.TTL); err != nil {
		return Grant{}, err
	}
	l := t.locks[a.Name]
	if l != nil {
		for i, h := range l.holders {
			if h.Token == a.Token && h.Holder == a.Holder {
				l.holders[i].TTL = a.TTL
				l.holders[i].Expires = now.Add(a.TTL)
				return l.holders[i], nil
			}
		}
	}
	if !t.InGrace(a.Name, now) {
		return Grant{}, fmt.Errorf("renew %s token %d: %w", a.Name, a.Token, ErrNotHeld)
	}
	l, err := t.state(a.Name, a.Limit)
	if err != nil {
		return Grant{}, err
	}
	if len(l.holders) >= l.limit || slices.ContainsFunc(l.holders, func(h Grant) bool { return h.Token == a.Token }) {
		t.gc(a.Name)
		return Grant{}, fmt.Errorf("re-assert %s token %d: conflict: %w", a.Name, a.Token, ErrNotHeld)
	}
	a.Expires = now.Add(a.TTL)
	l.holders = append(l.holders, a)
	t.last = max(t.last, a.Token)
	return a, nil
}

// Release ends the lease (name, token, h) and wakes the waiters that now fit.
func (t *Table) Release(now time.Time, name string, token uint64, h Holder) ([]Wake, error) {
	l := t.locks[name]
	if l == nil {
		return nil, fmt.Errorf("release %s token %d: %w", name, token, ErrNotHeld)
	}
	i := slices.IndexFunc(l.holders, func(g Grant) bool { return g.Token == token && g.Holder == h })
	if i < 0 {
		return nil, fmt.Errorf("release %s token %d: %w", name, token, ErrNotHeld)
	}
	l.holders = slices.Delete(l.holders, i, i+1)
	wakes := t.promote(name, now, nil)
	t.gc(name)
	return wakes, nil
}

// promote grants queued requests of name in FIFO order while they fit.
func (t *Table) promote(name string, now time.Time, wakes []Wake) []Wake {
	l := t.locks[name]
	if l == nil || t.InGrace(name, now) {
		return wakes
	}
	for len(l.waiters) > 0 && len(l.holders) < l.limit {
		r := l.waiters[0]
		l.waiters = l.waiters[1:]
		wakes = append(wakes, Wake{Holder: r.Holder, Name: name, Grant: t.grant(l, r, now)})
	}
	return wakes
}

// Expire removes the leases that expired by now, ends finished grace
// periods, and wakes the waiters that now fit. It returns the expired grants.
func (t *Table) Expire(now time.Time) (expired []Grant, wakes []Wake) {
	t.grace = slices.DeleteFunc(t.grace, func(g graceEntry) bool { return !now.Before(g.until) })
	for _, name := range t.sortedNames() {
		l := t.locks[name]
		l.holders = slices.DeleteFunc(l.holders, func(g Grant) bool {
			if now.Before(g.Expires) {
				return false
			}
			expired = append(expired, g)
			return true
		})
		wakes = t.promote(name, now, wakes)
		t.gc(name)
	}
	return expired, wakes
}

// DropNode removes every lease and queued request of node (it failed or
// left) and wakes the waiters that now fit. Removed waiters are woken with
// ErrNotHeld.
func (t *Table) DropNode(now time.Time, node string) (dropped []Grant, wakes []Wake) {
	for _, name := range t.sortedNames() {
		l := t.locks[name]
		l.holders = slices.DeleteFunc(l.holders, func(g Grant) bool {
			if g.Holder.Node != node {
				return false
			}
			dropped = append(dropped, g)
			return true
		})
		l.waiters = slices.DeleteFunc(l.waiters, func(r Request) bool {
			if r.Holder.Node != node {
				return false
			}
			wakes = append(wakes, Wake{Holder: r.Holder, Name: name, Err: fmt.Errorf("node %s gone: %w", node, ErrNotHeld)})
			return true
		})
		wakes = t.promote(name, now, wakes)
		t.gc(name)
	}
	return dropped, wakes
}

// DropUnowned forgets every lock for which owned reports false (ownership
// moved elsewhere). Its waiters are woken with ErrNotOwner so they retry at
// the new owner; its holders re-assert there.
func (t *Table) DropUnowned(owned func(name string) bool) (wakes []Wake) {
	for _, name := range t.sortedNames() {
		if owned(name) {
			continue
		}
		for _, r := range t.locks[name].waiters {
			wakes = append(wakes, Wake{Holder: r.Holder, Name: name, Err: fmt.Errorf("lock %s moved: %w", name, ErrNotOwner)})
		}
		delete(t.locks, name)
	}
	return wakes
}

func (t *Table) sortedNames() []string {
	names := make([]string, 0, len(t.locks))
	for n := range t.locks {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

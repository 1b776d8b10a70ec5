package locks

import (
	"cmp"
	"slices"
)

// better reports whether a should be proxy rather than b.
func better(a, b Member) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.Name < b.Name
}

// candidate reports whether m may be elected.
func candidate(m Member) bool { return m.Status == StatusAlive && m.ProxyEligible }

// Proxy returns the proxy of group: the alive, eligible member with the
// highest priority, ties broken by the smallest name. It reports false when
// the group has no candidate. Every member computes the same answer from the
// same membership.
func Proxy(members []Member, group string) (Member, bool) {
	var best Member
	found := false
	for _, m := range members {
		if m.Group != group || !candidate(m) {
			continue
		}
		if !found || better(m, best) {
			best, found = m, true
		}
	}
	return best, found
}

// Proxies returns the proxy of every group that has one, sorted by group.
func Proxies(members []Member) []Member {
	byGroup := make(map[string]Member)
	for _, m := range members {
		if !candidate(m) {
			continue
		}
		if cur, ok := byGroup[m.Group]; !ok || better(m, cur) {
			byGroup[m.Group] = m
		}
	}
	out := make([]Member, 0, len(byGroup))
	for _, m := range byGroup {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Group, b.Group) })
	return out
}

// OwnerProxy returns the proxy that owns the lock name: the proxy of the
// group that [Owner] picks among the groups with a proxy.
func OwnerProxy(proxies []Member, name string) (Member, bool) {
	groups := make([]string, len(proxies))
	for i, p := range proxies {
		groups[i] = p.Group
	}
	g, ok := Owner(groups, name)
	if !ok {
		return Member{}, false
	}
	for _, p := range proxies {
		if p.Group == g {
			return p, true
		}
	}
	return Member{}, false
}

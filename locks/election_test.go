package locks

import (
	"fmt"
	"testing"
)

func TestProxy(t *testing.T) {
	t.Parallel()
	m := func(name, group string, st Status, eligible bool, prio int) Member {
		return Member{Name: name, Group: group, Status: st, ProxyEligible: eligible, Priority: prio}
	}
	tests := []struct {
		name    string
		members []Member
		group   string
		want    string
	}{
		{"empty", nil, "a", ""},
		{"highest priority", []Member{m("x", "a", StatusAlive, true, 1), m("y", "a", StatusAlive, true, 5)}, "a", "y"},
		{"tie by name", []Member{m("y", "a", StatusAlive, true, 1), m("x", "a", StatusAlive, true, 1)}, "a", "x"},
		{"skip failed", []Member{m("y", "a", StatusFailed, true, 9), m("x", "a", StatusAlive, true, 1)}, "a", "x"},
		{"skip left", []Member{m("y", "a", StatusLeft, true, 9), m("x", "a", StatusAlive, true, 1)}, "a", "x"},
		{"skip ineligible", []Member{m("y", "a", StatusAlive, false, 9), m("x", "a", StatusAlive, true, 1)}, "a", "x"},
		{"other group", []Member{m("y", "b", StatusAlive, true, 9)}, "a", ""},
		{"none eligible", []Member{m("y", "a", StatusAlive, false, 9)}, "a", ""},
		{"negative priority", []Member{m("y", "a", StatusAlive, true, -1), m("z", "a", StatusAlive, true, 0)}, "a", "z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := Proxy(tt.members, tt.group)
			if ok != (tt.want != "") || got.Name != tt.want {
				t.Fatalf("Proxy = %q, %v; want %q", got.Name, ok, tt.want)
			}
		})
	}
}

func TestProxiesAgreeWithProxy(t *testing.T) {
	t.Parallel()
	var members []Member
	for i := range 30 {
		members = append(members, Member{
			Name: fmt.Sprintf("n%02d", i), Group: fmt.Sprintf("g%d", i%4),
			Status: Status(1 + i%4), ProxyEligible: i%3 != 0, Priority: i % 5,
		})
	}
	ps := Proxies(members)
	for _, p := range ps {
		want, ok := Proxy(members, p.Group)
		if !ok || want.Name != p.Name {
			t.Errorf("group %s: Proxies says %s, Proxy says %s", p.Group, p.Name, want.Name)
		}
	}
	for i := 1; i < len(ps); i++ {
		if ps[i-1].Group >= ps[i].Group {
			t.Errorf("Proxies not sorted by group: %v", ps)
		}
	}
}

func TestOwnerProxy(t *testing.T) {
	t.Parallel()
	ps := []Member{{Name: "p1", Group: "a"}, {Name: "p2", Group: "b"}, {Name: "p3", Group: "c"}}
	for i := range 100 {
		name := fmt.Sprintf("fetch/%d", i)
		p, ok := OwnerProxy(ps, name)
		g, _ := Owner([]string{"a", "b", "c"}, name)
		if !ok || p.Group != g {
			t.Fatalf("OwnerProxy(%s) = %v, owner group %s", name, p, g)
		}
	}
	if _, ok := OwnerProxy(nil, "x"); ok {
		t.Fatal("OwnerProxy with no proxies reported an owner")
	}
}

package locks

import "hash/fnv"

// Owner picks the candidate that owns key by rendezvous (highest random
// weight) hashing: each candidate scores hash(candidate, key) and the highest
// score wins, ties broken by the smaller candidate. Removing a candidate
// moves only the keys it owned; adding one takes an even share from the rest.
// It reports false when there are no candidates.
func Owner(candidates []string, key string) (string, bool) {
	var (
		best  string
		score uint64
		found bool
	)
	for _, c := range candidates {
		s := weight(c, key)
		if !found || s > score || (s == score && c < best) {
			best, score, found = c, s, true
		}
	}
	return best, found
}

// weight is a stable 64-bit score for (candidate, key): FNV-1a over both,
// separated by a zero byte, finished with the splitmix64 mixer so that
// similar inputs spread over the whole range.
func weight(candidate, key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(candidate))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

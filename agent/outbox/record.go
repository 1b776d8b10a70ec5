package outbox

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// record is an Item's stored form. Field names are short and stable: they
// are read back by later versions of the agent after an upgrade.
type record struct {
	Key    string        `json:"k"`
	Blob   digest.Digest `json:"b,omitempty"`
	Data   []byte        `json:"d,omitempty"`
	Delete bool          `json:"x,omitempty"`
}

func encodeItem(it Item) ([]byte, error) {
	return json.Marshal(record(it))
}

func decodeItem(b []byte) (Item, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return Item{}, fmt.Errorf("%w: decode: %w", ErrInvalidItem, err)
	}
	it := Item(r)
	return it, it.validate()
}

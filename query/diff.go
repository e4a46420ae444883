package query

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// MaxDiffChanges bounds the changes one diff reports; a diff cut there says
// so (Truncated).
const MaxDiffChanges = 10000

// maxLCSCells bounds the table of the array alignment; longer differing
// runs are reported as removed and added wholesale.
const maxLCSCells = 1 << 20

// Diff is what changed between two checkpoints, from → to.
type Diff struct {
	From, To projector.Version
	// Changes are the changes of the checkpoint state; MetadataChanges of
	// the metadata.
	Changes, MetadataChanges []Change
	// Truncated is true when more than MaxDiffChanges changes were found.
	Truncated bool
}

// Change is one difference between two JSON values.
type Change struct {
	// Op is "add", "remove" or "replace".
	Op string `json:"op"`
	// Path is a JSON Pointer (RFC 6901). Array indexes of removed elements
	// are those of the old value; of added and replaced ones, of the new.
	Path string `json:"path"`
	// Old and New are the exact JSON texts; nil where absent.
	Old json.RawMessage `json:"old,omitempty"`
	New json.RawMessage `json:"new,omitempty"`
}

// Ops of a Change.
const (
	OpAdd     = "add"
	OpRemove  = "remove"
	OpReplace = "replace"
)

// diffVersions compares two checkpoints' states and metadata.
func diffVersions(a, b projector.Version) Diff {
	d := Diff{From: a, To: b}
	st := &differ{}
	st.value("", a.State, b.State)
	md := &differ{}
	md.value("", a.Metadata, b.Metadata)
	d.Changes, d.MetadataChanges = st.changes, md.changes
	d.Truncated = st.truncated || md.truncated
	return d
}

// differ walks two JSON values (strict JSON, as stored) and records where
// they differ. Values that are equal as JSON (1 and 1.0, reordered object
// members) are not changes.
type differ struct {
	changes   []Change
	truncated bool
}

func (d *differ) add(c Change) {
	if len(d.changes) >= MaxDiffChanges {
		d.truncated = true
		return
	}
	d.changes = append(d.changes, c)
}

func kindOf(v []byte) byte {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

func (d *differ) value(path string, a, b json.RawMessage) {
	if bytes.Equal(a, b) || d.truncated {
		return
	}
	switch ka, kb := kindOf(a), kindOf(b); {
	case ka == '{' && kb == '{':
		if d.object(path, a, b) {
			return
		}
	case ka == '[' && kb == '[':
		if d.array(path, a, b) {
			return
		}
	}
	if !events.JSONEqual(a, b) {
		d.add(Change{Op: OpReplace, Path: path, Old: a, New: b})
	}
}

// object diffs two objects member by member; false if either is not one.
func (d *differ) object(path string, a, b json.RawMessage) bool {
	ma, err1 := events.ObjectMembers(a)
	mb, err2 := events.ObjectMembers(b)
	if err1 != nil || err2 != nil {
		return false
	}
	inB := make(map[string]json.RawMessage, len(mb))
	for _, m := range mb {
		inB[m.Key] = m.Value
	}
	inA := make(map[string]bool, len(ma))
	for _, m := range ma {
		inA[m.Key] = true
		p := path + "/" + escapePointer(m.Key)
		if v, ok := inB[m.Key]; ok {
			d.value(p, m.Value, v)
		} else {
			d.add(Change{Op: OpRemove, Path: p, Old: m.Value})
		}
	}
	for _, m := range mb {
		if !inA[m.Key] {
			d.add(Change{Op: OpAdd, Path: path + "/" + escapePointer(m.Key), New: m.Value})
		}
	}
	return true
}

// array diffs two arrays: the common head and tail are unchanged; a middle
// of equal length on both sides is compared element by element (a message
// edited in place shows as changes of its fields); otherwise the middles
// are aligned on their longest common subsequence and the rest is removed
// and added (messages appended or dropped show as such).
func (d *differ) array(path string, a, b json.RawMessage) bool {
	var ea, eb []json.RawMessage
	if json.Unmarshal(a, &ea) != nil || json.Unmarshal(b, &eb) != nil {
		return false
	}
	ca, cb := compactAll(ea), compactAll(eb)
	head := 0
	for head < len(ca) && head < len(cb) && ca[head] == cb[head] {
		head++
	}
	tail := 0
	for tail < len(ca)-head && tail < len(cb)-head && ca[len(ca)-1-tail] == cb[len(cb)-1-tail] {
		tail++
	}
	ma, mb := ca[head:len(ca)-tail], cb[head:len(cb)-tail]
	idx := func(i int) string { return path + "/" + strconv.Itoa(head+i) }
	switch {
	case len(ma) == len(mb):
		for i := range ma {
			d.value(idx(i), ea[head+i], eb[head+i])
		}
	case len(ma)*len(mb) > maxLCSCells || len(ma) == 0 || len(mb) == 0:
		for i := range ma {
			d.add(Change{Op: OpRemove, Path: idx(i), Old: ea[head+i]})
		}
		for j := range mb {
			d.add(Change{Op: OpAdd, Path: idx(j), New: eb[head+j]})
		}
	default:
		keepA, keepB := lcs(ma, mb)
		for i := range ma {
			if !keepA[i] {
				d.add(Change{Op: OpRemove, Path: idx(i), Old: ea[head+i]})
			}
		}
		for j := range mb {
			if !keepB[j] {
				d.add(Change{Op: OpAdd, Path: idx(j), New: eb[head+j]})
			}
		}
	}
	return true
}

// compactAll returns each element without insignificant whitespace, as a
// string to compare.
func compactAll(es []json.RawMessage) []string {
	out := make([]string, len(es))
	var buf bytes.Buffer
	for i, e := range es {
		buf.Reset()
		if json.Compact(&buf, e) != nil {
			out[i] = string(e)
			continue
		}
		out[i] = buf.String()
	}
	return out
}

// lcs marks the elements of a and b on one longest common subsequence.
func lcs(a, b []string) (keepA, keepB []bool) {
	n, m := len(a), len(b)
	// t[i][j]: LCS length of a[i:] and b[j:], in one slice.
	t := make([]int32, (n+1)*(m+1))
	at := func(i, j int) *int32 { return &t[i*(m+1)+j] }
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				*at(i, j) = *at(i+1, j+1) + 1
			} else {
				*at(i, j) = max(*at(i+1, j), *at(i, j+1))
			}
		}
	}
	keepA, keepB = make([]bool, n), make([]bool, m)
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case a[i] == b[j]:
			keepA[i], keepB[j] = true, true
			i, j = i+1, j+1
		case *at(i+1, j) >= *at(i, j+1):
			i++
		default:
			j++
		}
	}
	return keepA, keepB
}

// escapePointer escapes an object key as a JSON Pointer token.
func escapePointer(key string) string {
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

// roleOf returns the role of a message: an object with a string "role".
func roleOf(v json.RawMessage) (string, bool) {
	if kindOf(v) != '{' {
		return "", false
	}
	ms, err := events.ObjectMembers(v)
	if err != nil {
		return "", false
	}
	for _, m := range ms {
		if m.Key == "role" {
			var role string
			if json.Unmarshal(m.Value, &role) != nil {
				return "", false
			}
			return role, true
		}
	}
	return "", false
}

func appendDiff(b []byte, d Diff) []byte {
	ref := func(b []byte, v projector.Version) []byte {
		b = append(b, `{"checkpoint_id":`...)
		b = events.AppendString(b, v.ID)
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, v.Seq, 10)
		b = append(b, `,"created_at":`...)
		b = events.AppendString(b, v.CreatedAt.UTC().Format(time.RFC3339Nano))
		return append(b, '}')
	}
	b = append(b, `{"thread_id":`...)
	b = events.AppendString(b, d.From.ThreadID)
	b = append(b, `,"checkpoint_ns":`...)
	b = events.AppendString(b, d.From.NS)
	b = append(b, `,"from":`...)
	b = ref(b, d.From)
	b = append(b, `,"to":`...)
	b = ref(b, d.To)
	b = append(b, `,"changes":`...)
	b = appendChanges(b, d.Changes)
	b = append(b, `,"messages":{"added":`...)
	b = appendMessages(b, d.Changes, OpAdd)
	b = append(b, `,"removed":`...)
	b = appendMessages(b, d.Changes, OpRemove)
	b = append(b, `},"metadata_changes":`...)
	b = appendChanges(b, d.MetadataChanges)
	b = append(b, `,"truncated":`...)
	b = strconv.AppendBool(b, d.Truncated)
	return append(b, '}')
}

func appendChanges(b []byte, cs []Change) []byte {
	b = append(b, '[')
	for i, c := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"op":`...)
		b = events.AppendString(b, c.Op)
		b = append(b, `,"path":`...)
		b = events.AppendString(b, c.Path)
		if c.Old != nil {
			b = append(b, `,"old":`...)
			b = append(b, c.Old...)
		}
		if c.New != nil {
			b = append(b, `,"new":`...)
			b = append(b, c.New...)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendMessages lists the added (or removed) elements that are messages.
func appendMessages(b []byte, cs []Change, op string) []byte {
	b = append(b, '[')
	n := 0
	for _, c := range cs {
		v := c.New
		if op == OpRemove {
			v = c.Old
		}
		if c.Op != op {
			continue
		}
		role, ok := roleOf(v)
		if !ok {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"path":`...)
		b = events.AppendString(b, c.Path)
		b = append(b, `,"role":`...)
		b = events.AppendString(b, role)
		b = append(b, `,"message":`...)
		b = append(b, v...)
		b = append(b, '}')
	}
	return append(b, ']')
}

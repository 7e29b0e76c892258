package sinkstest

import (
	"bytes"
	"fmt"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// DirtyAlert is FalcoAlert(i, image, rule) whose event carries bytes that
// are not UTF-8, as a sensor sends them for a file name or a command line
// that is not: in proc.cmdline, fd.name and the output, plus an escaped
// unpaired surrogate (valid to encoding/json, refused by strict parsers).
func DirtyAlert(i int, image, rule string) *scorer.Alert {
	a := FalcoAlert(i, image, rule)
	raw := bytes.Replace(a.Event.Raw, []byte(`"proc.cmdline":"bash -i"`),
		[]byte("\"proc.cmdline\":\"bash -i /tmp/\xff\xfe\xc3.sh\",\"fd.name\":\"/tmp/\\ud800x\xed\xa0\x80\""), 1)
	raw = bytes.Replace(raw, []byte("user=root"), []byte("user=r\xe2\x80oot"), 1)
	ev, err := scorer.DecodeJSON(raw)
	if err != nil || bytes.Equal(raw, a.Event.Raw) {
		panic(fmt.Sprintf("sinkstest: dirty fixture event: %v", err)) // fixture bug
	}
	a.Event = ev
	a.ID = scorer.AlertID(ev.Raw, a.Kind)
	return a
}

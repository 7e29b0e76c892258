package pipeline

import (
	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/symbol"
)

// observationOf reads the fields of ev that its symbol is made of.
func observationOf(ev *scorer.Event, evtType string) symbol.Observation {
	return symbol.Observation{
		EvtType:    evtType,
		Res:        ev.Field(scorer.FieldEvtRes...),
		ExePath:    ev.Field(scorer.FieldProcExePath...),
		ParentName: ev.Field(scorer.FieldParentName...),
		UID:        ev.Field(scorer.FieldUserUID...),
		File:       ev.Field(scorer.FieldFDName...),
		Path:       ev.Field(scorer.FieldFSPath...),
		Flags:      ev.Field(scorer.FieldArgFlags...),
		Mode:       ev.Field(scorer.FieldArgMode...),
	}
}

package scorer

import "github.com/falco-scorer/falco-scorer/scorer/symbol"

// observationOf reads the fields of ev that its symbol is made of.
func observationOf(ev *Event, evtType string) symbol.Observation {
	return symbol.Observation{
		EvtType:    evtType,
		Res:        ev.Field(FieldEvtRes...),
		ExePath:    ev.Field(FieldProcExePath...),
		ParentName: ev.Field(FieldParentName...),
		UID:        ev.Field(FieldUserUID...),
		File:       ev.Field(FieldFDName...),
		Path:       ev.Field(FieldFSPath...),
		Flags:      ev.Field(FieldArgFlags...),
		Mode:       ev.Field(FieldArgMode...),
	}
}

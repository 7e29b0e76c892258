package sinks

import _ "embed"

//go:embed alert.schema.json
var alertSchema string

// AlertSchemaJSON returns the JSON Schema (draft 2020-12) of the alert JSON
// that Kafka records carry as their value (scorer.AlertSchema). Each call
// returns a fresh copy.
func AlertSchemaJSON() []byte { return []byte(alertSchema) }

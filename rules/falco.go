package rules

import _ "embed" // for the Falco rules file

// falcoRules is the Falco rules file. A string, so the embedded bytes cannot
// be modified through it.
//
//go:embed falco-scorer_rules.yaml
var falcoRules string

// FalcoRulesFile is the file name under which the Falco rules are shipped.
const FalcoRulesFile = "falco-scorer_rules.yaml"

// Tags carried by the observation rules of FalcoRules. The scorer treats an
// event tagged TagObservation as an observation (scored and learned, forwarded
// only when anomalous) and any other event as a Falco alert.
const (
	TagScorer      = "falco_scorer"
	TagObservation = "falco_scorer_observation"
)

// FalcoRules returns a copy of the Falco rules file falco-scorer ships, for
// `falco-scorer rules` to print or for deployment tooling to write out.
func FalcoRules() []byte { return []byte(falcoRules) }

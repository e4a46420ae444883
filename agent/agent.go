// Package agent is cairn's agent runtime: the State an agent checkpoints
// (shaped like the reference Locus AgentState), the Model interface an agent
// talks to, RunTurn, which plays one conversational turn against a Model, and
// Offline, a deterministic built-in model for demos and tests. A checkpoint is
// the exact JSON of a State: ToCheckpoint and FromCheckpoint round-trip byte
// for byte, so a checkpoint read back from any store can be compared, hashed
// and re-published unchanged. The package does no I/O and reads no clock of
// its own; publishing checkpoints is the caller's job. It imports only the
// standard library.
package agent

// DefaultMaxIterations is the model-call budget per turn that NewState uses
// when it is given none. It matches Locus's default of 20.
const DefaultMaxIterations = 20

// SystemPrompt is the system message RunTurn puts first in a conversation
// that has none.
const SystemPrompt = "You are the on-call incident commander for an online store. " +
	"You open and run incidents: state the symptom and its scope, correlate it with recent changes, " +
	"decide on mitigation and keep customers and stakeholders informed. " +
	"Be brief and factual, name services, versions and times exactly, and never guess at impact you have not seen."

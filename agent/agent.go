// Package agent is cairn's agent model: the State an agent checkpoints
// (shaped like the reference Locus AgentState), the Model interface an agent
// talks to, the steps a turn is made of (BeginTurn, PrepareResponse,
// ApplyStep, which a runtime checkpoints between), tools (Toolbox and the
// incident demo's IncidentTools), RunTurn, which plays a whole turn in
// memory, and two models: Offline, a deterministic built-in model for demos
// and tests, and OpenAI, a client of any OpenAI-compatible chat completions
// endpoint. A checkpoint is the exact JSON of a State: ToCheckpoint and
// FromCheckpoint round-trip byte for byte, so a checkpoint read back from any
// store can be compared, hashed and re-published unchanged.
//
// State, step and tool functions read no clock of their own (callers pass
// the time) and do no I/O. The package's only I/O is OpenAI's HTTP requests
// (and their retry timers), plus whatever the StatusPage a caller gives
// IncidentTools does. Publishing checkpoints is the caller's job; package
// runner does it through a saver. Besides the standard library the package
// imports only events, for error kinds.
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

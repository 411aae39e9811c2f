// Package commands turns the text people type after /deploy into a typed Command.
//
// It is a pure parser with no I/O and no project imports, so the Slack adapter,
// the shell adapter and the tests all agree on what a piece of text means, and
// every mistake gets an answer (*UsageError) written for the person who typed it.
package commands

import (
	"strconv"
	"strings"
	"time"
)

// Verb names what a command asks greenlight to do.
type Verb string

// The verbs of the command set, in the order help lists them.
const (
	VerbDeploy   Verb = "deploy"
	VerbDiff     Verb = "diff"
	VerbStatus   Verb = "status"
	VerbHistory  Verb = "history"
	VerbApprove  Verb = "approve"
	VerbAbort    Verb = "abort"
	VerbRollback Verb = "rollback"
	VerbRetire   Verb = "retire"
	VerbLock     Verb = "lock"
	VerbUnlock   Verb = "unlock"
	VerbResolve  Verb = "resolve"
	VerbFreeze   Verb = "freeze"
	VerbUnfreeze Verb = "unfreeze"
	VerbRefresh  Verb = "refresh"
	VerbSchedule Verb = "schedule"
	VerbHelp     Verb = "help"
)

// Limits on what Parse accepts; they keep chat input from growing audit records
// and replies without bound.
const (
	MaxTextBytes    = 4000 // whole command text
	MaxReasonRunes  = 500  // --reason, in characters
	MaxImageBytes   = 128  // --image
	DefaultLimit    = 10   // history without -n
	MaxLimit        = 100  // largest history -n
	maxServiceBytes = 63
)

// Command is one parsed chat command.
type Command struct {
	Verb             Verb
	Service          string        // "" when omitted (allowed for status, history, approve, abort, rollback, retire, help, schedule)
	DeployID         uint64        // "#N" (diff, approve, abort, rollback, retire, resolve); 0 when omitted
	Image            string        // deploy --image ID
	AutoApprove      bool          // deploy --auto-approve
	DryRun           bool          // deploy --dry-run
	AllowLargeChange bool          // deploy --allow-large-change
	AllowSameSerial  bool          // deploy --allow-same-serial
	OverrideFreeze   bool          // deploy --override-freeze
	All              bool          // freeze/unfreeze --all: every service
	For              time.Duration // freeze --for 2h; 0 when not given
	Until            time.Time     // freeze --until RFC 3339, in UTC; zero when not given
	To               string        // resolve --to old|new
	Force            bool          // unlock --force
	Reason           string        // deploy/lock --reason TEXT
	Limit            int           // history -n N (default 10, 1..100); 0 for other verbs
	Topic            string        // help TOPIC (a verb name), "" for general help
}

// UsageError is every error Parse returns. Message says what was wrong,
// Suggestion is the word the person probably meant, and Usage is the usage line
// of the verb involved (or the general usage when no verb could be told).
type UsageError struct {
	Message    string
	Suggestion string
	Usage      string
}

// Error renders the error as the bot would reply in chat.
func (e *UsageError) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Suggestion != "" {
		b.WriteString("; did you mean ")
		b.WriteString(e.Suggestion)
		b.WriteString("?")
	}
	b.WriteString("\nusage: ")
	b.WriteString(e.Usage)
	return b.String()
}

// arity says whether a verb takes a service.
type arity int

const (
	noService arity = iota
	optionalService
	requiredService
)

// verbSpec is what a verb accepts and how help describes it.
type verbSpec struct {
	verb     Verb
	usage    string
	desc     string
	service  arity
	deployID bool     // takes a #N
	topic    bool     // takes a help topic
	flags    []string // flag spellings this verb takes, canonical first
}

// verbSpecs is the command set, one row per verb in the order help lists
// them; the parser, usage, help and suggestions all read it. A new verb is
// a Verb above and a row here (and what it does, in bot.Router); nothing
// writes the table.
var verbSpecs = [...]verbSpec{
	{
		verb:    VerbDeploy,
		usage:   "/deploy SERVICE [--image ID] [--auto-approve] [--dry-run] [--allow-large-change] [--allow-same-serial] [--override-freeze] [--reason TEXT]",
		desc:    "build a new set beside the live one, check it, and move traffic once approved (--override-freeze: admins, during a freeze)",
		service: requiredService,
		flags:   []string{"--image", "--auto-approve", "--dry-run", "--allow-large-change", "--allow-same-serial", "--override-freeze", "--reason"},
	},
	{
		verb:     VerbDiff,
		usage:    "/deploy diff SERVICE [#N]",
		desc:     "compare the zone the next set serves with the live one",
		service:  requiredService,
		deployID: true,
	},
	{
		verb:    VerbStatus,
		usage:   "/deploy status [SERVICE]",
		desc:    "show locks and deploys in progress",
		service: optionalService,
	},
	{
		verb:    VerbHistory,
		usage:   "/deploy history [SERVICE] [-n N]",
		desc:    "list recent deploys, newest first (10 unless -n says otherwise, at most 100)",
		service: optionalService,
		flags:   []string{"-n", "--limit"},
	},
	{
		verb:     VerbApprove,
		usage:    "/deploy approve [SERVICE] [#N]",
		desc:     "approve a deploy waiting at the approval gate",
		service:  optionalService,
		deployID: true,
	},
	{
		verb:     VerbAbort,
		usage:    "/deploy abort [SERVICE] [#N]",
		desc:     "stop a deploy before traffic moves and remove its new servers",
		service:  optionalService,
		deployID: true,
	},
	{
		verb:     VerbRollback,
		usage:    "/deploy rollback [SERVICE] [#N]",
		desc:     "move traffic back to the previous set during the rollback window",
		service:  optionalService,
		deployID: true,
	},
	{
		verb:     VerbRetire,
		usage:    "/deploy retire [SERVICE] [#N]",
		desc:     "end the rollback window now: delete the previous set and release the lock (approvers)",
		service:  optionalService,
		deployID: true,
	},
	{
		verb:    VerbLock,
		usage:   "/deploy lock SERVICE [--reason TEXT]",
		desc:    "stop anyone from deploying a service",
		service: requiredService,
		flags:   []string{"--reason"},
	},
	{
		verb:    VerbUnlock,
		usage:   "/deploy unlock SERVICE [--force]",
		desc:    "release a service's lock (--force: one you do not hold)",
		service: requiredService,
		flags:   []string{"--force"},
	},
	{
		verb:     VerbResolve,
		usage:    "/deploy resolve SERVICE [#N] --to old|new",
		desc:     "end a deploy that needs attention: keep the old or the new set, delete the other and release the lock (admins)",
		service:  requiredService,
		deployID: true,
		flags:    []string{"--to"},
	},
	{
		verb:    VerbFreeze,
		usage:   "/deploy freeze SERVICE|--all [--for 2h | --until 2026-12-27T08:00Z] --reason TEXT",
		desc:    "refuse new deploys of a service (or of all) until the time given or /deploy unfreeze; deploys in flight go on (admins)",
		service: optionalService,
		flags:   []string{"--all", "--for", "--until", "--reason"},
	},
	{
		verb:    VerbUnfreeze,
		usage:   "/deploy unfreeze SERVICE|--all",
		desc:    "end a freeze set with /deploy freeze (admins)",
		service: optionalService,
		flags:   []string{"--all"},
	},
	{
		verb:    VerbRefresh,
		usage:   "/deploy refresh SERVICE",
		desc:    "bake a fresh golden image of a service now; it is announced, with the command that deploys it, when it is ready",
		service: requiredService,
	},
	{
		verb:  VerbSchedule,
		usage: "/deploy schedule",
		desc:  "show each service's image refresh schedule: the next bake (UTC), the last one and how it went",
	},
	{
		verb:  VerbHelp,
		usage: "/deploy help [COMMAND]",
		desc:  "list the commands, or show how to use one",
		topic: true,
	},
}

// specOf describes v; ok is false for a verb that does not exist.
func specOf(v Verb) (verbSpec, bool) {
	for _, s := range verbSpecs {
		if s.verb == v {
			return s, true
		}
	}
	return verbSpec{}, false
}

// verbNames returns the verbs as plain strings, for suggestions.
func verbNames() []string {
	names := make([]string, len(verbSpecs))
	for i, s := range verbSpecs {
		names[i] = string(s.verb)
	}
	return names
}

// verbsWhere lists, in help order and as a sentence ("deploy, lock and
// freeze"), the verbs whose spec has what.
func verbsWhere(what func(verbSpec) bool) string {
	var names []string
	for _, s := range verbSpecs {
		if what(s) {
			names = append(names, string(s.verb))
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// generalUsage answers when no verb can be told from the text.
const generalUsage = "/deploy SERVICE [flags] | /deploy COMMAND [args] — /deploy help lists every command"

// Usage returns the one-line usage of v, or the general usage for an unknown verb.
func Usage(v Verb) string {
	if s, ok := specOf(v); ok {
		return s.usage
	}
	return generalUsage
}

// Help returns what `/deploy help` prints: one line per verb with what it is for.
func Help() string {
	var b strings.Builder
	for i, s := range verbSpecs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(s.usage)
		b.WriteString(" — ")
		b.WriteString(s.desc)
	}
	return b.String()
}

// String renders the canonical text of c, starting with "/deploy", such that
// Parse(c.String(), nil) returns c for every c that Parse returns.
func (c Command) String() string {
	var b strings.Builder
	b.WriteString("/deploy")
	add := func(s string) {
		b.WriteByte(' ')
		b.WriteString(s)
	}
	switch {
	case c.Verb == VerbDeploy:
		// A service whose name reads as a command (or a near miss of one)
		// needs the explicit verb, or it would parse as that command.
		if c.Service == "" || shadowed(c.Service) {
			add(string(VerbDeploy))
		}
	case c.Verb != "":
		add(string(c.Verb))
	}
	if c.Service != "" {
		add(c.Service)
	}
	if c.DeployID != 0 {
		add("#" + strconv.FormatUint(c.DeployID, 10))
	}
	if c.Topic != "" {
		add(c.Topic)
	}
	if c.Image != "" {
		add("--image " + c.Image)
	}
	if c.AutoApprove {
		add("--auto-approve")
	}
	if c.DryRun {
		add("--dry-run")
	}
	if c.AllowLargeChange {
		add("--allow-large-change")
	}
	if c.AllowSameSerial {
		add("--allow-same-serial")
	}
	if c.OverrideFreeze {
		add("--override-freeze")
	}
	if c.All {
		add("--all")
	}
	if c.For != 0 {
		add("--for " + c.For.String())
	}
	if !c.Until.IsZero() {
		add("--until " + c.Until.Format(time.RFC3339Nano))
	}
	if c.Force {
		add("--force")
	}
	if c.To != "" {
		add("--to " + c.To)
	}
	if c.Limit != 0 && (c.Verb != VerbHistory || c.Limit != DefaultLimit) {
		add("-n " + strconv.Itoa(c.Limit))
	}
	if c.Reason != "" {
		// Last, because an unquoted reason runs to the next flag.
		add("--reason " + quoteReason(c.Reason))
	}
	return b.String()
}

// shadowed reports whether "/deploy NAME" would parse as something other than
// a deploy of NAME when any service name is accepted.
func shadowed(name string) bool {
	if _, ok := specOf(Verb(name)); ok {
		return true
	}
	return suggest(name, verbNames()) != ""
}

// quoteReason picks a quoting that reads back as r: double quotes, then single
// quotes, then none. A reason Parse returned always fits one of them, since it
// was read with one of them.
func quoteReason(r string) string {
	if !closesInside(r, doubleQuotes) {
		return `"` + r + `"`
	}
	if !closesInside(r, singleQuotes) {
		return "'" + r + "'"
	}
	return r
}

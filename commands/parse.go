package commands

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TooLong is the answer to a command of n bytes, over MaxTextBytes.
func TooLong(n int) error {
	return usageError("", "", "that command is too long: %d bytes, the limit is %d", n, MaxTextBytes)
}

// Parse parses text. services lists the known service names; nil accepts any
// well-formed name ([a-z0-9][a-z0-9-]{0,62}), while an empty, non-nil list
// accepts none. Verbs win over service names: a service called like a verb is
// deployed with "/deploy deploy NAME".
func Parse(text string, services []string) (Command, error) {
	if len(text) > MaxTextBytes {
		return Command{}, TooLong(len(text))
	}
	if !utf8.ValidString(text) {
		return Command{}, usageError("", "", "that command is not valid UTF-8 text")
	}
	for _, r := range text {
		if unicode.IsControl(r) && !unicode.IsSpace(r) {
			return Command{}, usageError("", "", "that command contains a control character (%U)", r)
		}
	}
	p := &parser{sc: scanner{s: text}, services: lowerAll(services)}
	return p.parse()
}

// usageError builds the error for verb v ("" when no verb is known).
func usageError(v Verb, suggestion, format string, args ...any) *UsageError {
	return &UsageError{Message: fmt.Sprintf(format, args...), Suggestion: suggestion, Usage: Usage(v)}
}

// parser holds the state of one Parse call.
type parser struct {
	sc       scanner
	services []string // lower-cased; nil accepts any well-formed name
	cmd      Command
	spec     verbSpec
	seen     map[string]bool // value flags already given, by canonical name
}

func (p *parser) parse() (Command, error) {
	if w, _, end := p.sc.peek(); asciiLower(w) == "/deploy" || asciiLower(w) == "deploy" {
		p.sc.pos = end
	}
	first, _ := p.sc.next()
	if first == "" {
		return Command{Verb: VerbHelp}, nil
	}
	word := asciiLower(first)
	if _, ok := specOf(Verb(word)); ok {
		return p.args(Verb(word), "")
	}
	switch {
	case isFlagLike(first):
		name, _, hasValue := strings.Cut(first, "=")
		name = flagName(name)
		if (name == "--help" || name == "-h") && !hasValue {
			return p.args(VerbHelp, "")
		}
		if _, ok := flagOf(name); ok {
			return Command{}, usageError("", "", "put the service first, then %s: /deploy SERVICE %s", name, name)
		}
		return Command{}, usageError("", "", "%s is not a command; start with a service or a command", quote(first))
	case strings.HasPrefix(first, "#"):
		return Command{}, usageError("", "", "%s needs a command first, e.g. /deploy approve %s", quote(first), first)
	}
	if p.known(word) || (p.services == nil && validName(word) && suggest(word, verbNames()) == "") {
		return p.args(VerbDeploy, word)
	}
	candidates := append(verbNames(), p.services...)
	s := suggest(word, candidates)
	switch {
	case s != "" && p.services == nil:
		return Command{}, usageError("", s, "unknown command %s (to deploy a service by that name: /deploy deploy %s)", quote(first), word)
	case s != "":
		return Command{}, usageError("", s, "%s is not a command or a known service", quote(first))
	case p.services == nil:
		return Command{}, usageError("", "", "%s is not a command or a valid service name", quote(first))
	case len(p.services) == 0:
		return Command{}, usageError("", "", "%s is not a command, and no services are configured", quote(first))
	}
	return Command{}, usageError("", "", "%s is not a command or a known service (%s)", quote(first), p.knownList())
}

// args parses what follows verb v; service is already known when the text
// started with it.
func (p *parser) args(v Verb, service string) (Command, error) {
	p.cmd = Command{Verb: v, Service: service}
	p.spec, _ = specOf(v)
	for {
		w, start := p.sc.next()
		if w == "" {
			break
		}
		var err error
		switch {
		case isFlagLike(w):
			var help bool
			help, err = p.flag(w, start)
			if err == nil && help {
				topic := string(v)
				if v == VerbHelp {
					topic = p.cmd.Topic
				}
				return Command{Verb: VerbHelp, Topic: topic}, nil
			}
		case strings.HasPrefix(w, "#"):
			err = p.deployID(w)
		default:
			err = p.positional(w)
		}
		if err != nil {
			return Command{}, err
		}
	}
	if p.spec.service == requiredService && p.cmd.Service == "" {
		return Command{}, p.fail("", "%s needs a service%s", v, p.servicesHint())
	}
	if v == VerbFreeze || v == VerbUnfreeze {
		switch {
		case p.cmd.All && p.cmd.Service != "":
			return Command{}, p.fail("", "%s takes a service or --all, not both", v)
		case !p.cmd.All && p.cmd.Service == "":
			return Command{}, p.fail("", "%s needs a service, or --all for every service", v)
		case v == VerbFreeze && p.cmd.For != 0 && !p.cmd.Until.IsZero():
			return Command{}, p.fail("", "give --for or --until, not both")
		case v == VerbFreeze && p.cmd.Reason == "":
			return Command{}, p.fail("", "freeze needs --reason TEXT: it is shown to everyone whose deploy is refused")
		}
	}
	if v == VerbResolve && p.cmd.To == "" {
		return Command{}, p.fail("", "resolve needs --to old (keep the old set) or --to new (keep the new set)")
	}
	if v == VerbHistory && p.cmd.Limit == 0 {
		p.cmd.Limit = DefaultLimit
	}
	return p.cmd, nil
}

// fail builds an error carrying the current verb's usage.
func (p *parser) fail(suggestion, format string, args ...any) *UsageError {
	return usageError(p.cmd.Verb, suggestion, format, args...)
}

// positional takes a word that is neither a flag nor a #N.
func (p *parser) positional(w string) error {
	v := p.cmd.Verb
	switch {
	case p.spec.topic && p.cmd.Topic == "":
		topic := asciiLower(w)
		if _, ok := specOf(Verb(topic)); !ok {
			if s := suggest(topic, verbNames()); s != "" {
				return p.fail(s, "there is no help for %s", quote(w))
			}
			return p.fail("", "there is no help for %s; the topics are the commands: %s", quote(w), strings.Join(verbNames(), ", "))
		}
		p.cmd.Topic = topic
		return nil
	case p.spec.service != noService && p.cmd.Service == "":
		name, err := p.service(w)
		if err != nil {
			return err
		}
		p.cmd.Service = name
		return nil
	case p.spec.topic:
		return p.fail("", "help takes one topic, but %s came after %s", quote(w), p.cmd.Topic)
	case p.spec.service == noService:
		return p.fail("", "%s takes no arguments, but got %s", v, quote(w))
	case slices.Contains(p.spec.flags, "--reason"):
		return p.fail("", "unexpected %s after the service; to give a reason, use --reason TEXT", quote(w))
	}
	return p.fail("", "unexpected %s: %s takes one service", quote(w), v)
}

// service validates a service name and returns it lower-cased.
func (p *parser) service(w string) (string, error) {
	name := asciiLower(w)
	if !validName(name) {
		return "", p.fail(suggest(name, p.services), "%s is not a valid service name (lower-case letters, digits and dashes, at most %d)", quote(w), maxServiceBytes)
	}
	if p.services == nil || p.known(name) {
		return name, nil
	}
	hint := ""
	if isDigits(name) && p.spec.deployID {
		hint = "; deploy numbers are written #" + name
	} else if isDigits(name) && p.cmd.Verb == VerbHistory {
		hint = "; to list " + name + " deploys, use -n " + name
	}
	if len(p.services) == 0 {
		return "", p.fail("", "unknown service %s: no services are configured%s", quote(w), hint)
	}
	return "", p.fail(suggest(name, p.services), "unknown service %s; known services: %s%s", quote(w), p.knownList(), hint)
}

// deployID takes a "#N" word.
func (p *parser) deployID(w string) error {
	if !p.spec.deployID {
		return p.fail("", "deploy numbers like %s only go with %s", quote(w), verbsWhere(func(s verbSpec) bool { return s.deployID }))
	}
	digits := w[1:]
	if !isDigits(digits) {
		return p.fail("", "%s is not a deploy number; write it like #42", quote(w))
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return p.fail("", "%s is too big for a deploy number", quote(w))
	}
	if n == 0 {
		return p.fail("", "deploy numbers start at #1")
	}
	if p.cmd.DeployID != 0 {
		return p.fail("", "give one deploy number, not #%d and %s", p.cmd.DeployID, quote(w))
	}
	p.cmd.DeployID = n
	return nil
}

// flag takes a flag word that starts at byte start; help reports a request
// for help (--help, -h) instead of a flag.
func (p *parser) flag(w string, start int) (help bool, err error) {
	rawName, _, hasValue := strings.Cut(w, "=")
	name := flagName(rawName)
	if name == "--help" || name == "-h" {
		if hasValue {
			return false, p.fail("", "%s takes no value", name)
		}
		return true, nil
	}
	f, ok := flagOf(name)
	if !ok {
		if len(p.spec.flags) == 0 {
			return false, p.fail("", "%s takes no flags, but got %s", p.cmd.Verb, quote(rawName))
		}
		return false, p.fail(suggestFlag(name, p.spec.flags), "%s has no flag %s", p.cmd.Verb, quote(rawName))
	}
	if !slices.Contains(p.spec.flags, name) {
		return false, p.fail("", "%s is only for %s", name, verbsWhere(func(s verbSpec) bool { return slices.Contains(s.flags, f.name) }))
	}
	if f.boolean {
		if hasValue {
			return false, p.fail("", "%s takes no value", name)
		}
		switch f.name {
		case "--auto-approve":
			p.cmd.AutoApprove = true
		case "--dry-run":
			p.cmd.DryRun = true
		case "--allow-large-change":
			p.cmd.AllowLargeChange = true
		case "--allow-same-serial":
			p.cmd.AllowSameSerial = true
		case "--force":
			p.cmd.Force = true
		case "--override-freeze":
			p.cmd.OverrideFreeze = true
		case "--all":
			p.cmd.All = true
		}
		return false, nil
	}
	if p.seen[f.name] {
		return false, p.fail("", "%s is given twice", name)
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	p.seen[f.name] = true
	if hasValue {
		// Read the value from right after "=", so a quoted value may hold spaces.
		p.sc.pos = start + len(rawName) + 1
	}
	switch f.name {
	case "--reason":
		p.cmd.Reason, err = p.reason(name)
		return false, err
	case "--to":
		v, err := p.value(name, "old or new")
		if err != nil {
			return false, err
		}
		if v != "old" && v != "new" {
			return false, p.fail(suggest(v, []string{"old", "new"}), "--to takes old or new, not %s", quote(v))
		}
		p.cmd.To = v
		return false, nil
	case "--for":
		v, err := p.value(name, "a duration like 2h or 90m")
		if err != nil {
			return false, err
		}
		d, err := ParseFor(v)
		if err != nil {
			return false, p.fail("", "%s", err.Error())
		}
		p.cmd.For = d
		return false, nil
	case "--until":
		v, err := p.value(name, "a time like 2026-12-27T08:00Z")
		if err != nil {
			return false, err
		}
		at, err := ParseUntil(v)
		if err != nil {
			return false, p.fail("", "%s", err.Error())
		}
		p.cmd.Until = at
		return false, nil
	case "--image":
		v, err := p.value(name, "an image ID")
		if err != nil {
			return false, err
		}
		if !validImage(v) {
			return false, p.fail("", "%s is not an image ID (letters, digits and . _ : / @ + -, at most %d characters)", quote(v), MaxImageBytes)
		}
		p.cmd.Image = v
		return false, nil
	}
	v, err := p.value(name, fmt.Sprintf("a number from 1 to %d", MaxLimit))
	if err != nil {
		return false, err
	}
	n, err := strconv.Atoi(v)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return false, p.fail("", "%s needs a whole number from 1 to %d, not %s", name, MaxLimit, quote(v))
	}
	if err != nil || n < 1 || n > MaxLimit {
		return false, p.fail("", "%s must be between 1 and %d, not %s", name, MaxLimit, short(v))
	}
	p.cmd.Limit = n
	return false, nil
}

// value reads the single word (or quoted text) after a flag.
func (p *parser) value(name, what string) (string, error) {
	w, _, _ := p.sc.peek()
	if w == "" || endsValue(w) {
		return "", p.fail("", "%s needs %s", name, what)
	}
	if r, _ := utf8.DecodeRuneInString(w); isOpenQuote(r) {
		return p.quoted(name)
	}
	w, _ = p.sc.next()
	return w, nil
}

// reason reads a quoted text, or else every word up to the next --flag, and
// collapses its white space so it reads as one line in chat and the audit log.
func (p *parser) reason(name string) (string, error) {
	var text string
	w, _, _ := p.sc.peek()
	if r, _ := utf8.DecodeRuneInString(w); isOpenQuote(r) {
		var err error
		if text, err = p.quoted(name); err != nil {
			return "", err
		}
	} else {
		var words []string
		for {
			w, _, end := p.sc.peek()
			if w == "" || isLongFlag(w) {
				break
			}
			words = append(words, w)
			p.sc.pos = end
		}
		text = strings.Join(words, " ")
	}
	text = strings.Join(strings.Fields(text), " ")
	if text == "" {
		return "", p.fail("", "%s needs some text", name)
	}
	if n := utf8.RuneCountInString(text); n > MaxReasonRunes {
		return "", p.fail("", "%s is too long: %d characters, the limit is %d", name, n, MaxReasonRunes)
	}
	return text, nil
}

// quoted reads quoted text starting at the next word. A quote closes only when
// followed by a space or the end, so apostrophes inside ("don’t") stay text.
func (p *parser) quoted(name string) (string, error) {
	p.sc.skipSpace()
	s := p.sc.s
	open, n := utf8.DecodeRuneInString(s[p.sc.pos:])
	closers := doubleQuotes
	if strings.ContainsRune(singleQuotes, open) {
		closers = singleQuotes
	}
	for i := p.sc.pos + n; i < len(s); {
		r, m := utf8.DecodeRuneInString(s[i:])
		if strings.ContainsRune(closers, r) && spaceOrEnd(s, i+m) {
			text := s[p.sc.pos+n : i]
			p.sc.pos = i + m
			return text, nil
		}
		i += m
	}
	return "", p.fail("", "%s has an opening %c but no closing %c (a closing quote goes before a space or the end)", name, open, closingQuote(open))
}

// The quote families: any member closes a quote opened by any other, since
// Slack and phones turn straight quotes into curly ones unpredictably.
const (
	doubleQuotes = "\"“”"
	singleQuotes = "'‘’"
)

func isOpenQuote(r rune) bool {
	return strings.ContainsRune(doubleQuotes, r) || strings.ContainsRune(singleQuotes, r)
}

// closingQuote names the quote a person would type to close open.
func closingQuote(open rune) rune {
	switch open {
	case '“':
		return '”'
	case '‘':
		return '’'
	}
	return open
}

// closesInside reports whether a quote from closers, followed by a space,
// occurs in s — where it would end a quotation early.
func closesInside(s, closers string) bool {
	for i, r := range s {
		if next := i + utf8.RuneLen(r); next < len(s) && strings.ContainsRune(closers, r) && spaceOrEnd(s, next) {
			return true
		}
	}
	return false
}

func spaceOrEnd(s string, i int) bool {
	if i >= len(s) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.IsSpace(r)
}

// flagSpec describes one flag; the verbs that take it list it in verbSpecs.
type flagSpec struct {
	name    string // canonical spelling
	boolean bool
}

// flagOf looks up a flag by its normalized spelling; --limit is -n.
func flagOf(name string) (flagSpec, bool) {
	switch name {
	case "--image", "--to", "--reason", "--for", "--until":
		return flagSpec{name: name}, true
	case "--auto-approve", "--dry-run", "--allow-large-change", "--allow-same-serial", "--override-freeze", "--all", "--force":
		return flagSpec{name: name, boolean: true}, true
	case "-n", "--limit":
		return flagSpec{name: "-n"}, true
	}
	return flagSpec{}, false
}

// suggestFlag compares flags without their dashes, so "-force" and
// "--autoapprove" still find their flag.
func suggestFlag(name string, flags []string) string {
	bare := make([]string, len(flags))
	for i, f := range flags {
		bare[i] = strings.TrimLeft(f, "-")
	}
	s := suggest(strings.TrimLeft(name, "-"), bare)
	for i, b := range bare {
		if s != "" && b == s {
			return flags[i]
		}
	}
	return ""
}

// flagName lower-cases a flag and reads a leading em or en dash as "--":
// Slack and macOS turn a typed "--" into "—".
func flagName(w string) string {
	w = asciiLower(w)
	for _, dash := range []string{"—", "–"} {
		if rest, ok := strings.CutPrefix(w, dash); ok {
			return "--" + rest
		}
	}
	return w
}

// isFlagLike reports whether w is in the place of a flag.
func isFlagLike(w string) bool {
	if strings.HasPrefix(w, "-") {
		return len(w) > 1
	}
	return flagName(w) != asciiLower(w) && len(flagName(w)) > 2
}

// isLongFlag reports whether w is a --flag, which ends an unquoted reason.
// A lone dash or "—" between words is prose, not a flag.
func isLongFlag(w string) bool {
	f := flagName(w)
	return strings.HasPrefix(f, "--") && len(f) > 2 && isASCIILetter(f[2])
}

// endsValue reports whether w is a flag rather than the value of the one
// before it; "-5" stays a value so "-n -5" can say what is wrong with it.
func endsValue(w string) bool {
	if isLongFlag(w) {
		return true
	}
	name, _, _ := strings.Cut(flagName(w), "=")
	return name == "-n" || name == "-h"
}

// scanner walks white-space separated words of the text.
type scanner struct {
	s   string
	pos int
}

func (sc *scanner) skipSpace() {
	for sc.pos < len(sc.s) {
		r, n := utf8.DecodeRuneInString(sc.s[sc.pos:])
		if !unicode.IsSpace(r) {
			return
		}
		sc.pos += n
	}
}

// peek returns the next word and its byte span without consuming it.
func (sc *scanner) peek() (w string, start, end int) {
	sc.skipSpace()
	start, end = sc.pos, sc.pos
	for end < len(sc.s) {
		r, n := utf8.DecodeRuneInString(sc.s[end:])
		if unicode.IsSpace(r) {
			break
		}
		end += n
	}
	return sc.s[start:end], start, end
}

// next consumes the next word and returns it with its start; "" at the end.
func (sc *scanner) next() (string, int) {
	w, start, end := sc.peek()
	sc.pos = end
	return w, start
}

// known reports whether name is a configured service.
func (p *parser) known(name string) bool {
	return slices.Contains(p.services, name)
}

// knownList lists configured services for an error message, briefly.
func (p *parser) knownList() string {
	const show = 20
	if len(p.services) <= show {
		return strings.Join(p.services, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(p.services[:show], ", "), len(p.services)-show)
}

// servicesHint completes "VERB needs a service" with what there is to choose from.
func (p *parser) servicesHint() string {
	switch {
	case p.services == nil:
		return ""
	case len(p.services) == 0:
		return ", and none are configured"
	}
	return ": " + p.knownList()
}

// ValidService reports whether name is a service name as Parse returns it
// (lower case), for callers that take names from elsewhere (button values).
func ValidService(name string) bool { return validName(name) }

// ValidImage reports whether id is an image ID that --image accepts.
func ValidImage(id string) bool { return validImage(id) }

// validName reports whether name is a well-formed service name.
func validName(name string) bool {
	if name == "" || len(name) > maxServiceBytes || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validImage keeps image IDs to characters that cloud image names use, which
// also keeps them from being read back as quotes or flags.
func validImage(id string) bool {
	if id == "" || len(id) > MaxImageBytes || !isASCIILetter(id[0]) && !isDigit(id[0]) {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !isASCIILetter(c) && !isDigit(c) && !strings.ContainsRune("._:/@+-", rune(c)) {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool       { return c >= '0' && c <= '9' }
func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// asciiLower folds only A–Z, so look-alike letters (the Kelvin sign, the long
// s) never turn into a verb or a service name.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// lowerAll lower-cases the service list, keeping nil distinct from empty.
func lowerAll(names []string) []string {
	if names == nil {
		return nil
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = asciiLower(n)
	}
	return out
}

// quote shows a word the person typed, shortened so a pasted novel does not
// become the reply.
func quote(w string) string {
	return strconv.Quote(short(w))
}

// short cuts w to 40 characters.
func short(w string) string {
	const max = 40
	if utf8.RuneCountInString(w) > max {
		return string([]rune(w)[:max]) + "…"
	}
	return w
}

// Package shell is the terminal chat adapter: commands typed (or piped) one
// per line, messages printed as they come. A checklist updated in place is
// printed as one line per step change (whole when only its end is seen).
package shell

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/commands"
	"github.com/greenlight/greenlight/deployer"
)

// Deployments is what the shell asks of the deployer.
type Deployments interface {
	WaitIdle(ctx context.Context) error
	Deployment(ctx context.Context, id uint64) (deployer.Deployment, error)
	Services() []string
	Status(ctx context.Context, service string) (deployer.Status, error)
}

// Shell reads commands from In and prints to Out.
type Shell struct {
	In          io.Reader
	Out         io.Writer
	User        string
	Interactive bool // print a prompt; otherwise (a pipe) wait for deploys at end of input
	Router      *bot.Router
	Deployer    Deployments
	// Line, when set, is the terminal's line editor (golang.org/x/term's
	// Terminal): lines are read through it, with editing and history, and
	// it redraws the prompt around what is printed; Out writes through it.
	Line LineEditor
	// Color marks ✓ green, ✗ red and ! yellow (a terminal without NO_COLOR).
	Color bool
	// Tick, when set, rewrites the line of a running step with its elapsed
	// time at each tick (a terminal, once a second); Now tells the time.
	Tick <-chan time.Time
	Now  func() time.Time

	mu      sync.Mutex
	shown   map[string]*bot.Message // last rendering of each keyed message
	last    uint64                  // the last deploy started here
	running *runningStep            // the step the last line printed says started
	// While a typed command runs, what the pipeline reports meanwhile is
	// held and printed after the command's answer, so the answer comes first.
	holding bool
	held    []heldOutput
}

// heldOutput is output waiting for a command's answer.
type heldOutput struct {
	out    string
	deploy uint64
	item   *bot.Item // the one step the output shows, if it is one line
}

var _ bot.Chat = (*Shell)(nil)

// LineEditor reads lines a person types at a terminal.
type LineEditor interface {
	ReadLine() (string, error)
	SetPrompt(prompt string)
}

// runningStep is a step whose start is the last line on the screen.
type runningStep struct {
	deploy uint64
	item   bot.Item
}

const promptText = "greenlight> "

// ErrLastDeployFailed is returned by Run when input ended and the last
// deploy started from this shell failed.
type ErrLastDeployFailed struct{ Deployment deployer.Deployment }

func (e *ErrLastDeployFailed) Error() string {
	return fmt.Sprintf("deploy #%d ended %s", e.Deployment.ID, e.Deployment.Phase)
}

// Run reads commands until input ends or ctx is cancelled. At the end of
// piped input it waits until no deploy is in an active step, and returns
// *ErrLastDeployFailed when the last deploy it started failed. (Aborted and
// rolled-back deploys were someone's decision, not a failure.)
func (s *Shell) Run(ctx context.Context) error {
	lines := make(chan inputLine)
	next := make(chan struct{}) // the line was handled: read the next one
	readErr := make(chan error, 1)
	go func() {
		r := bufio.NewReader(s.In)
		for {
			line, err := s.readLine(r)
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				readErr <- err
				close(lines)
				return
			}
			select {
			case lines <- line:
			case <-ctx.Done():
				return
			}
			select {
			case <-next:
			case <-ctx.Done():
				return
			}
		}
	}()
	if s.Tick != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-s.Tick:
					s.tick()
				case <-stop:
					return
				}
			}
		}()
	}
	s.prompt()
	for {
		select {
		case <-ctx.Done():
			s.endPrompt()
			s.leaving(context.WithoutCancel(ctx))
			return nil
		case line, ok := <-lines:
			if !ok {
				if err := <-readErr; err != nil {
					return fmt.Errorf("read commands: %w", err)
				}
				return s.finish(ctx)
			}
			if quit := s.handle(ctx, line); quit {
				return s.finish(ctx)
			}
			s.prompt()
			select {
			case next <- struct{}{}:
			case <-ctx.Done():
			}
		}
	}
}

// leaving says, for each deploy still in flight, where it is left and that
// the next start picks it up.
func (s *Shell) leaving(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var b strings.Builder
	for _, name := range s.Deployer.Services() {
		st, err := s.Deployer.Status(ctx, name)
		if err != nil || st.Active == nil {
			continue
		}
		b.WriteString(LeavingText(*st.Active) + "\n")
	}
	if b.Len() == 0 {
		return
	}
	s.print(b.String())
}

// LeavingText says where a deploy in flight is left when greenlight stops.
func LeavingText(d deployer.Deployment) string {
	head := fmt.Sprintf("Deploy #%d of %s", d.ID, d.Service)
	switch d.Phase {
	case deployer.PhaseAwaitingApproval:
		return fmt.Sprintf("%s is left waiting for approval (until %s); it is saved, and the next start asks again.", head, deployer.TimeOfDay(d.ApprovalDeadline))
	case deployer.PhaseRollbackWindow:
		return fmt.Sprintf("%s is left live on %s, in its rollback window until %s; it is saved, and the next start resumes it (then the old set is retired).",
			head, serverNames(d.Next), deployer.TimeOfDay(d.RollbackDeadline))
	}
	return fmt.Sprintf("%s is left at %s; it stops at a safe point, and the next start runs that step again.", head, d.CurrentStep().Title())
}

func serverNames(servers []deployer.Server) string {
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// maxLine is how much of one input line is kept; a longer line is answered
// as too long (its length counted, its bytes dropped) and reading goes on.
const maxLine = 64 * 1024

// inputLine is one line read, without its end; Size is its length in bytes.
// A line longer than the reader keeps has no Text.
type inputLine struct {
	Text    string
	Size    int
	TooLong bool
}

// readLine reads one line, keeping at most max bytes of it.
func readLine(r *bufio.Reader, max int) (inputLine, error) {
	var buf []byte
	n := 0
	for {
		chunk, err := r.ReadSlice('\n')
		n += len(chunk)
		if len(buf) <= max {
			buf = append(buf, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && (n == 0 || !errors.Is(err, io.EOF)) {
			return inputLine{}, err
		}
		if strings.HasSuffix(string(chunk), "\n") {
			n--
			if strings.HasSuffix(string(buf), "\r\n") {
				n--
			}
		}
		if n > max {
			return inputLine{Size: n, TooLong: true}, nil
		}
		return inputLine{Text: strings.TrimRight(string(buf), "\r\n"), Size: n}, nil
	}
}

// readLine reads the next line from the terminal's editor, or from In.
func (s *Shell) readLine(r *bufio.Reader) (inputLine, error) {
	if s.Line == nil {
		return readLine(r, maxLine)
	}
	text, err := s.Line.ReadLine()
	if err != nil {
		return inputLine{}, err
	}
	if len(text) > maxLine {
		return inputLine{Size: len(text), TooLong: true}, nil
	}
	return inputLine{Text: text, Size: len(text)}, nil
}

// manualPrompt reports whether the shell draws the prompt itself: at a
// terminal without a line editor.
func (s *Shell) manualPrompt() bool { return s.Interactive && s.Line == nil }

func (s *Shell) style() style { return style{color: s.Color} }

// endPrompt takes the prompt off the screen for good.
func (s *Shell) endPrompt() {
	switch {
	case s.Line != nil:
		s.Line.SetPrompt("")
		s.print("") // the editor clears its line and draws the empty prompt
	case s.Interactive:
		s.print("\r\x1b[2K")
	}
}

func (s *Shell) prompt() {
	if s.manualPrompt() {
		s.print(promptText)
	}
}

// handle runs one line; it reports whether the user asked to quit.
func (s *Shell) handle(ctx context.Context, line inputLine) bool {
	if line.TooLong {
		if !s.Interactive {
			s.print(fmt.Sprintf("> (a line of %d bytes)\n", line.Size))
		}
		s.print(s.style().text(bot.Message{Level: bot.LevelError, Text: bot.ErrorText(commands.TooLong(line.Size))}))
		return false
	}
	text := strings.TrimSpace(line.Text)
	switch text {
	case "":
		return false
	case "quit", "exit":
		return true
	}
	if !s.Interactive {
		echo := text
		if len(echo) > commands.MaxTextBytes {
			echo = fmt.Sprintf("(a line of %d bytes)", len(text))
		}
		s.print("> " + echo + "\n")
	}
	s.mu.Lock()
	s.holding = true
	s.mu.Unlock()
	reply := s.Router.Handle(ctx, bot.Request{User: s.User, Text: text})
	s.mu.Lock()
	defer s.mu.Unlock()
	if reply.DeployID != 0 {
		s.last = reply.DeployID
	}
	for _, m := range reply.Messages {
		if s.manualPrompt() {
			io.WriteString(s.Out, "\r\x1b[2K") // a message shown meanwhile may have left a prompt
		}
		io.WriteString(s.Out, s.style().text(m))
	}
	s.running = nil
	for _, h := range s.held {
		s.showLocked(h, false)
	}
	s.holding, s.held = false, nil
	return false
}

func (s *Shell) finish(ctx context.Context) error {
	if s.Interactive {
		s.endPrompt()
		s.leaving(ctx)
		return nil
	}
	if err := s.Deployer.WaitIdle(ctx); err != nil {
		s.leaving(context.WithoutCancel(ctx))
		return nil // interrupted: state is persisted, nothing failed
	}
	s.leaving(ctx)
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	if last == 0 {
		return nil
	}
	d, err := s.Deployer.Deployment(ctx, last)
	if err != nil {
		return err
	}
	if d.Phase == deployer.PhaseFailed {
		return &ErrLastDeployFailed{Deployment: d}
	}
	return nil
}

func (s *Shell) print(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	io.WriteString(s.Out, text)
}

// Send prints a message. A checklist already shown prints only the steps
// that changed, then the whole list once the deploy has ended.
func (s *Shell) Send(ctx context.Context, m bot.Message) error {
	s.mu.Lock()
	if s.shown == nil {
		s.shown = map[string]*bot.Message{}
	}
	prev := s.shown[m.Key]
	if m.Key != "" {
		cp := m
		s.shown[m.Key] = &cp
	}
	s.mu.Unlock()

	var out string
	var item *bot.Item
	switch {
	case m.Checklist != nil:
		out, item = s.style().checklistChange(prev, m, s.Interactive)
	case prev == nil && m.Key != "" && m.Thread != "" && len(m.Actions) == 0:
		// A question closed before it was asked here (an abort before the
		// approval gate): the decision is printed as its own reply.
		return nil
	case prev != nil && (m.Thread != "" || prev.Text == m.Text):
		// An update of a message already shown in a deploy (the approval
		// question once decided): the decision itself is printed as its
		// own reply. Announcements (a bake's outcome) print each change.
		return nil
	default:
		out = s.style().text(m)
	}
	if out == "" {
		return nil
	}
	s.show(heldOutput{out: out, deploy: m.DeployID, item: item})
	return nil
}

// show prints output that arrives on its own (not as the answer to a line
// just typed). At a terminal the prompt is cleared first and drawn again
// after, and a step's end overwrites the line that said it started.
func (s *Shell) show(h heldOutput) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holding {
		s.held = append(s.held, h)
		return
	}
	s.showLocked(h, true)
}

// showLocked prints h, and the prompt again when prompt is set; s.mu is held.
func (s *Shell) showLocked(h heldOutput, prompt bool) {
	if !s.Interactive {
		io.WriteString(s.Out, h.out)
		return
	}
	clear := ""
	if s.manualPrompt() {
		clear = "\r\x1b[2K"
	}
	if r := s.running; r != nil && h.item != nil && h.deploy == r.deploy && h.item.Step == r.item.Step {
		clear += "\x1b[1A\x1b[2K" // the line that said it started
	}
	s.running = nil
	if h.item != nil && h.item.Status == deployer.StatusRunning {
		s.running = &runningStep{deploy: h.deploy, item: *h.item}
	}
	out := h.out
	if prompt && s.manualPrompt() {
		out += promptText
	}
	io.WriteString(s.Out, clear+out)
}

// tick rewrites the running step's line with how long it has run.
func (s *Shell) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.running
	if r == nil || s.holding || s.Now == nil || r.item.Started.IsZero() {
		return
	}
	it := r.item
	it.Duration = s.Now().Sub(it.Started)
	if it.Duration < time.Second {
		return
	}
	clear, out := "\x1b[1A\x1b[2K", fmt.Sprintf("  #%d %s\n", r.deploy, s.style().itemLine(it))
	if s.manualPrompt() {
		clear, out = "\r\x1b[2K"+clear, out+promptText
	}
	io.WriteString(s.Out, clear+out)
}

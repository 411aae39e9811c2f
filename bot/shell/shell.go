// Package shell is the terminal chat adapter: commands typed (or piped) one
// per line, messages printed as they come. A checklist updated in place is
// printed as one line per step change, and whole when the deploy ends.
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

	mu          sync.Mutex
	shown       map[string]*bot.Message // last rendering of each keyed message
	last        uint64                  // the last deploy started here
	runningLine string                  // the last line printed, when it says a step started
	// While a typed command runs, what the pipeline reports meanwhile is
	// held and printed after the command's answer, so the answer comes first.
	holding bool
	held    []string
}

var _ bot.Chat = (*Shell)(nil)

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
	readErr := make(chan error, 1)
	go func() {
		r := bufio.NewReader(s.In)
		for {
			line, err := readLine(r, maxLine)
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
		}
	}()
	s.prompt()
	for {
		select {
		case <-ctx.Done():
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Interactive {
		io.WriteString(s.Out, "\r\x1b[2K")
	}
	io.WriteString(s.Out, b.String())
}

// LeavingText says where a deploy in flight is left when greenlight stops.
func LeavingText(d deployer.Deployment) string {
	head := fmt.Sprintf("Deploy #%d of %s", d.ID, d.Service)
	switch d.Phase {
	case deployer.PhaseAwaitingApproval:
		return fmt.Sprintf("%s is left waiting for approval (until %s); it is saved, and the next start asks again.", head, d.ApprovalDeadline.UTC().Format("15:04:05 MST"))
	case deployer.PhaseRollbackWindow:
		return fmt.Sprintf("%s is left live on %s, in its rollback window until %s; it is saved, and the next start resumes it (then the old set is retired).",
			head, serverNames(d.Next), d.RollbackDeadline.UTC().Format("15:04:05 MST"))
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

func (s *Shell) prompt() {
	if s.Interactive {
		s.print(promptText)
	}
}

// handle runs one line; it reports whether the user asked to quit.
func (s *Shell) handle(ctx context.Context, line inputLine) bool {
	if line.TooLong {
		if !s.Interactive {
			s.print(fmt.Sprintf("> (a line of %d bytes)\n", line.Size))
		}
		s.print(renderText(bot.Message{Level: bot.LevelError, Text: bot.ErrorText(commands.TooLong(line.Size))}))
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
		if s.Interactive {
			io.WriteString(s.Out, "\r\x1b[2K") // a message shown meanwhile may have left a prompt
		}
		io.WriteString(s.Out, renderText(m))
	}
	s.runningLine = ""
	for _, out := range s.held {
		s.showLocked(out, false)
	}
	s.holding, s.held = false, nil
	return false
}

func (s *Shell) finish(ctx context.Context) error {
	if s.Interactive {
		s.print("\n")
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
	switch {
	case m.Checklist != nil:
		out = renderChecklistChange(prev, m, s.Interactive)
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
		out = renderText(m)
	}
	if out == "" {
		return nil
	}
	s.show(out)
	return nil
}

// show prints output that arrives on its own (not as the answer to a line
// just typed). At a terminal it clears the prompt first and prints it again
// after, and a step's end overwrites the line that said it started.
func (s *Shell) show(out string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holding {
		s.held = append(s.held, out)
		return
	}
	s.showLocked(out, true)
}

// showLocked prints out, and the prompt again when prompt is set; s.mu is held.
func (s *Shell) showLocked(out string, prompt bool) {
	if !s.Interactive {
		io.WriteString(s.Out, out)
		return
	}
	first, _, _ := strings.Cut(out, "\n")
	clear := "\r\x1b[2K"
	if endsStep(s.runningLine, first) {
		clear = "\r\x1b[2K\x1b[1A\x1b[2K"
	}
	s.runningLine = ""
	if strings.Count(out, "\n") == 1 && strings.Contains(first, " "+bot.StatusIcon(deployer.StatusRunning)+" ") {
		s.runningLine = first
	}
	if prompt {
		out += promptText
	}
	io.WriteString(s.Out, clear+out)
}

// endsStep reports whether line reports the end of the step that running
// said had started ("  #1 … Plan" then "  #1 ✓ Plan   3ms …").
func endsStep(running, line string) bool {
	deploy, title, ok := strings.Cut(running, " "+bot.StatusIcon(deployer.StatusRunning)+" ")
	if !ok || !strings.HasPrefix(line, deploy+" ") {
		return false
	}
	rest := strings.TrimLeft(line[len(deploy)+1:], "✓✗–·… ")
	return strings.HasPrefix(rest, strings.TrimSpace(title))
}

// renderChecklistChange prints the steps that changed. Steps that have only
// started are shown at a terminal, where a person watches a slow step; a pipe
// gets each step once, when it ends.
func renderChecklistChange(prev *bot.Message, m bot.Message, interactive bool) string {
	c := m.Checklist
	var b strings.Builder
	if prev == nil || prev.Checklist == nil {
		fmt.Fprintf(&b, "%s\n", c.Title)
	}
	old := map[deployer.StepName]bot.Item{}
	if prev != nil && prev.Checklist != nil {
		for _, it := range prev.Checklist.Items {
			old[it.Step] = it
		}
	}
	for _, it := range c.Items {
		was, seen := old[it.Step]
		if it.Status == deployer.StatusPending || (seen && was.Status == it.Status && was.Detail == it.Detail) {
			continue
		}
		if it.Status == deployer.StatusRunning && !interactive {
			continue
		}
		if it.Status == deployer.StatusSkipped && (prev == nil || prev.Checklist == nil) {
			continue
		}
		fmt.Fprintf(&b, "  #%d %s\n", m.DeployID, itemLine(it))
	}
	if m.Level != bot.LevelInfo && c.Footer != "" && (prev == nil || prev.Checklist == nil || prev.Checklist.Footer != c.Footer) {
		b.WriteString(RenderChecklist(c))
	}
	return b.String()
}

func itemLine(it bot.Item) string {
	line := fmt.Sprintf("%s %-32s", bot.StatusIcon(it.Status), it.Title)
	if it.Status != deployer.StatusRunning && it.Status != deployer.StatusSkipped {
		line += fmt.Sprintf(" %8s", bot.Round(it.Duration))
	}
	if it.Detail != "" {
		line += "  " + it.Detail
	}
	return strings.TrimRight(line, " ")
}

// RenderChecklist prints a whole checklist.
func RenderChecklist(c *bot.Checklist) string {
	var b strings.Builder
	fmt.Fprintf(&b, "┌ %s\n", c.Title)
	for _, it := range c.Items {
		fmt.Fprintf(&b, "│ %s\n", itemLine(it))
	}
	if c.Footer != "" {
		fmt.Fprintf(&b, "└ %s\n", c.Footer)
	}
	return b.String()
}

func renderText(m bot.Message) string {
	var b strings.Builder
	prefix := ""
	switch m.Level {
	case bot.LevelError:
		prefix = "✗ "
	case bot.LevelWarning:
		prefix = "! "
	case bot.LevelSuccess:
		prefix = "✓ "
	}
	if m.DeployID != 0 && m.Thread != "" {
		prefix = fmt.Sprintf("#%d %s", m.DeployID, prefix)
	}
	b.WriteString(prefix + m.Text + "\n")
	for _, a := range m.Actions {
		if a.ID == bot.ActionDeployNow {
			if service, image, err := bot.ParseDeployNowValue(a.Value); err == nil {
				fmt.Fprintf(&b, "   type %s to deploy it\n", bot.DeployNowCommand(service, image))
				continue
			}
		}
		fmt.Fprintf(&b, "   [%s] type: %s\n", a.Label, actionCommand(a))
	}
	return b.String()
}

// actionCommand is the command a button stands for, so a shell user can type it.
func actionCommand(a bot.Action) string {
	service, id, err := bot.ParseActionValue(a.Value)
	if err != nil {
		return a.ID
	}
	return fmt.Sprintf("/deploy %s %s #%d", a.ID, service, id)
}

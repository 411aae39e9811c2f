package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/greenlight/greenlight/commands"
	"github.com/greenlight/greenlight/deployer"
)

// Deployer is what the router asks of the domain.
type Deployer interface {
	Services() []string
	Deploy(ctx context.Context, req deployer.Request) (deployer.Deployment, error)
	Approve(ctx context.Context, service string, id uint64, user string) (deployer.Deployment, error)
	Abort(ctx context.Context, service string, id uint64, user, reason string) (deployer.Deployment, error)
	Rollback(ctx context.Context, service string, id uint64, user string) (deployer.Deployment, error)
	Retire(ctx context.Context, service string, id uint64, user string) (deployer.Deployment, error)
	Lock(ctx context.Context, service, user, reason string) (deployer.Lock, error)
	Unlock(ctx context.Context, service, user string, force bool) (deployer.Lock, error)
	Resolve(ctx context.Context, service string, id uint64, user string, to deployer.TrafficTarget) (deployer.Deployment, error)
	Freeze(ctx context.Context, req deployer.FreezeRequest) (deployer.Freeze, error)
	Unfreeze(ctx context.Context, service, user string) (deployer.Freeze, error)
	Status(ctx context.Context, service string) (deployer.Status, error)
	History(ctx context.Context, service string, n int) ([]deployer.Deployment, error)
	Deployment(ctx context.Context, id uint64) (deployer.Deployment, error)
	Now() time.Time
}

// Auditor records refusals the deployer never sees (authorization).
type Auditor interface {
	Audit(e deployer.AuditEntry) error
}

// Router turns chat text and button clicks into deployer actions and
// answers with messages.
type Router struct {
	Deployer Deployer
	Auth     *Authorizer
	Audit    Auditor // optional
	// Refresher bakes images on request and lists the schedules; nil
	// answers /deploy refresh and /deploy schedule with "not configured".
	Refresher Refresher
	// AnnounceIn says where announcements appear, in the chat's words
	// ("in the announcements channel"); "" = "here", the terminal.
	AnnounceIn string
	// Log, when set, records the causes of failures the chat is told of
	// in words only.
	Log *slog.Logger
}

// Request is one command typed by a person.
type Request struct {
	User    string
	Channel string
	Text    string
}

// Reply is the router's answer. Messages are for the person who asked
// (ephemeral unless marked otherwise); DeployID is set when a deploy started.
type Reply struct {
	Messages []Message
	DeployID uint64
}

// Handle parses and runs one command.
func (r *Router) Handle(ctx context.Context, req Request) Reply {
	cmd, err := commands.Parse(req.Text, r.Deployer.Services())
	if err != nil {
		return r.fail(req.User, err)
	}
	return r.Run(ctx, req.User, req.Channel, cmd)
}

// Click is a button pressed in a message.
type Click struct {
	User    string
	Channel string
	Action  string // an Action ID
	Value   string // the Action's Value
}

// HandleClick runs the command a button stands for, as the person who
// clicked: approve, abort, rollback and retire ("ns#7"), or deploy-now
// ("ns image=ID"), which starts a deploy exactly as typing it would.
func (r *Router) HandleClick(ctx context.Context, c Click) Reply {
	if c.Action == ActionDeployNow {
		return r.deployNow(ctx, c)
	}
	service, id, err := ParseActionValue(c.Value)
	if err != nil {
		return r.fail(c.User, err)
	}
	cmd := commands.Command{Service: service, DeployID: id}
	switch c.Action {
	case ActionApprove:
		cmd.Verb = commands.VerbApprove
	case ActionAbort:
		cmd.Verb = commands.VerbAbort
	case ActionRollback:
		cmd.Verb = commands.VerbRollback
	case ActionRetire:
		cmd.Verb = commands.VerbRetire
	default:
		return r.fail(c.User, deployer.Errorf(deployer.CodeInvalid, "unknown button %q", c.Action))
	}
	return r.Run(ctx, c.User, c.Channel, cmd)
}

// ParseActionValue decodes an Action's Value ("ns#7").
func ParseActionValue(v string) (string, uint64, error) {
	service, num, ok := strings.Cut(v, "#")
	if !ok || service == "" {
		return "", 0, deployer.Errorf(deployer.CodeInvalid, "malformed button value %q", v)
	}
	id, err := strconv.ParseUint(num, 10, 64)
	if err != nil || id == 0 {
		return "", 0, deployer.Errorf(deployer.CodeInvalid, "malformed deploy number in button value %q", v)
	}
	return service, id, nil
}

// decision reports whether verb is a decision about one deploy.
func decision(verb commands.Verb) bool {
	switch verb {
	case commands.VerbApprove, commands.VerbAbort, commands.VerbRollback, commands.VerbRetire:
		return true
	}
	return false
}

// resolve names the service a decision is about when the command leaves it
// out: the service of deploy #N, the one service there is, or that of the
// one deploy in flight (preferring one waiting for this decision), which it
// then names by number too.
func (r *Router) resolve(ctx context.Context, cmd commands.Command) (commands.Command, error) {
	if cmd.Service != "" {
		return cmd, nil // the deployer refuses #N of another service
	}
	if cmd.DeployID != 0 {
		d, err := r.Deployer.Deployment(ctx, cmd.DeployID)
		if err != nil {
			return cmd, err
		}
		cmd.Service = d.Service
		return cmd, nil
	}
	names := r.Deployer.Services()
	if len(names) == 1 {
		cmd.Service = names[0]
		return cmd, nil
	}
	var want deployer.Phase // abort: any active deploy
	switch cmd.Verb {
	case commands.VerbApprove:
		want = deployer.PhaseAwaitingApproval
	case commands.VerbRollback, commands.VerbRetire:
		want = deployer.PhaseRollbackWindow
	}
	var active, waiting []deployer.Deployment
	for _, name := range names {
		st, err := r.Deployer.Status(ctx, name)
		if err != nil {
			return cmd, err
		}
		if st.Active == nil {
			continue
		}
		active = append(active, *st.Active)
		if want != "" && st.Active.Phase == want {
			waiting = append(waiting, *st.Active)
		}
	}
	if len(waiting) > 0 {
		active = waiting
	}
	switch len(active) {
	case 0:
		return cmd, deployer.Errorf(deployer.CodeNotFound, "no deploy is in flight")
	case 1:
		cmd.Service, cmd.DeployID = active[0].Service, active[0].ID
		return cmd, nil
	}
	list := make([]string, len(active))
	for i, d := range active {
		list[i] = fmt.Sprintf("#%d (%s)", d.ID, d.Service)
	}
	return cmd, deployer.Errorf(deployer.CodeInvalid, "%d deploys are in flight: %s; name the service or the deploy, like /deploy %s %s #%d",
		len(active), strings.Join(list, ", "), cmd.Verb, active[0].Service, active[0].ID)
}

// authorize checks every permission cmd needs. A deploy that approves
// itself (--auto-approve) needs approve permission as well as deploy.
func (r *Router) authorize(ctx context.Context, user, channel string, cmd commands.Command) error {
	if cmd.Verb == commands.VerbFreeze || cmd.Verb == commands.VerbUnfreeze {
		services := []string{cmd.Service}
		if cmd.All {
			services = r.Deployer.Services()
		}
		for _, s := range services {
			if err := r.Auth.AllowAdmin(ctx, user, channel, s, "freeze or unfreeze its deploys"); err != nil {
				return err
			}
		}
		return nil
	}
	if err := r.Auth.Allow(ctx, user, channel, cmd.Service, permission(cmd)); err != nil {
		return err
	}
	if cmd.Verb == commands.VerbDeploy && cmd.OverrideFreeze && !cmd.DryRun {
		if err := r.Auth.AllowAdmin(ctx, user, channel, cmd.Service, "deploy it during a freeze (--override-freeze)"); err != nil {
			return err
		}
	}
	if cmd.Verb == commands.VerbDeploy && cmd.AutoApprove && !cmd.DryRun {
		if err := r.Auth.Allow(ctx, user, channel, cmd.Service, PermApprove); err != nil {
			return fmt.Errorf("--auto-approve approves the deploy as you: %w", err)
		}
	}
	return nil
}

func permission(cmd commands.Command) Permission {
	switch cmd.Verb {
	case commands.VerbDeploy, commands.VerbLock, commands.VerbRefresh:
		return PermDeploy
	case commands.VerbUnlock:
		if cmd.Force {
			return PermAdmin
		}
		return PermDeploy
	case commands.VerbResolve, commands.VerbFreeze, commands.VerbUnfreeze:
		return PermAdmin
	case commands.VerbApprove, commands.VerbAbort, commands.VerbRollback, commands.VerbRetire:
		return PermApprove
	}
	return PermView
}

// Run executes a parsed command for user.
func (r *Router) Run(ctx context.Context, user, channel string, cmd commands.Command) Reply {
	if decision(cmd.Verb) {
		// approve, abort and rollback act on one deploy: find it first, so
		// the person is authorised against the service it belongs to and
		// the deployer is asked about exactly that deploy.
		resolved, err := r.resolve(ctx, cmd)
		if err != nil {
			return r.fail(user, err)
		}
		cmd = resolved
	}
	if err := r.authorize(ctx, user, channel, cmd); err != nil {
		r.audit(user, "refused "+string(cmd.Verb), cmd.Service, cmd.DeployID, err.Error())
		return r.fail(user, fmt.Errorf("not allowed: %w", err))
	}
	switch cmd.Verb {
	case commands.VerbHelp:
		text := commands.Help()
		if cmd.Topic != "" {
			text = "usage: " + commands.Usage(commands.Verb(cmd.Topic))
		}
		return r.say(user, LevelInfo, text)
	case commands.VerbDeploy:
		req := deployer.Request{Service: cmd.Service, User: user, Reason: cmd.Reason,
			Options: deployer.Options{Image: cmd.Image, AutoApprove: cmd.AutoApprove, DryRun: cmd.DryRun, AllowLargeChange: cmd.AllowLargeChange,
				AllowSameSerial: cmd.AllowSameSerial, OverrideFreeze: cmd.OverrideFreeze}}
		if channel != "" {
			req.Refs = map[string]string{deployer.RefChannel: channel}
		}
		d, err := r.Deployer.Deploy(ctx, req)
		if err != nil {
			return r.fail(user, err)
		}
		if d.Phase == deployer.PhasePlanned {
			return r.say(user, LevelInfo, fmt.Sprintf("Dry run of %s: %s. Nothing was created; the lock was not taken.",
				d.Service, d.Step(deployer.StepPlan).Detail))
		}
		reply := r.say(user, LevelInfo, fmt.Sprintf("Started deploy #%d of %s.", d.ID, d.Service))
		reply.DeployID = d.ID
		return reply
	case commands.VerbApprove:
		d, err := r.Deployer.Approve(ctx, cmd.Service, cmd.DeployID, user)
		if err != nil {
			return r.fail(user, err)
		}
		if !d.SwitchAt.IsZero() {
			return r.say(user, LevelSuccess, fmt.Sprintf("Approved deploy #%d of %s; %s is outside its deploy windows and will switch at %s.",
				d.ID, d.Service, d.Service, deployer.SwitchTime(d.SwitchAt, d.SwitchZone)))
		}
		return r.say(user, LevelSuccess, fmt.Sprintf("Approved deploy #%d of %s; switching traffic.", d.ID, d.Service))
	case commands.VerbAbort:
		d, err := r.Deployer.Abort(ctx, cmd.Service, cmd.DeployID, user, cmd.Reason)
		if err != nil {
			return r.fail(user, err)
		}
		return r.say(user, LevelWarning, fmt.Sprintf("Aborting deploy #%d of %s.", d.ID, d.Service))
	case commands.VerbRollback:
		d, err := r.Deployer.Rollback(ctx, cmd.Service, cmd.DeployID, user)
		if err != nil {
			return r.fail(user, err)
		}
		verb := "answer"
		if len(d.Old) == 1 {
			verb = "answers"
		}
		return r.say(user, LevelWarning, fmt.Sprintf("Rolling back deploy #%d of %s: checking that %s still %s, then switching traffic back.", d.ID, d.Service, serverList(d.Old), verb))
	case commands.VerbRetire:
		d, err := r.Deployer.Retire(ctx, cmd.Service, cmd.DeployID, user)
		if err != nil {
			return r.fail(user, err)
		}
		return r.say(user, LevelWarning, fmt.Sprintf("Ending the rollback window of deploy #%d of %s: retiring %s and releasing the lock.", d.ID, d.Service, serverList(d.Old)))
	case commands.VerbLock:
		l, err := r.Deployer.Lock(ctx, cmd.Service, user, cmd.Reason)
		if err != nil {
			return r.fail(user, err)
		}
		return r.say(user, LevelInfo, fmt.Sprintf("%s is locked by %s; no deploy starts until /deploy unlock %s.", l.Service, l.Holder, l.Service))
	case commands.VerbUnlock:
		l, err := r.Deployer.Unlock(ctx, cmd.Service, user, cmd.Force)
		if err != nil {
			return r.fail(user, err)
		}
		return r.say(user, LevelInfo, fmt.Sprintf("%s is unlocked (the lock was held by %s since %s).", l.Service, lockHolder(l), deployer.TimeOfDay(l.Since)))
	case commands.VerbResolve:
		to, keep := deployer.TrafficOld, "old"
		if cmd.To == "new" {
			to, keep = deployer.TrafficNext, "new"
		}
		d, err := r.Deployer.Resolve(ctx, cmd.Service, cmd.DeployID, user, to)
		if err != nil {
			return r.fail(user, err)
		}
		kept := d.Old
		if to == deployer.TrafficNext {
			kept = d.Next
		}
		return r.say(user, LevelWarning, fmt.Sprintf("Resolving deploy #%d of %s: keeping the %s set (%s). Checking it answers, then traffic goes there, the other set is deleted and the lock released.",
			d.ID, d.Service, keep, serverList(kept)))
	case commands.VerbFreeze:
		req := deployer.FreezeRequest{Service: cmd.Service, User: user, Reason: cmd.Reason, Until: cmd.Until}
		if cmd.For > 0 {
			req.Until = r.Deployer.Now().Add(cmd.For)
		}
		f, err := r.Deployer.Freeze(ctx, req)
		if err != nil {
			return r.fail(user, err)
		}
		return r.announce(user, LevelWarning, fmt.Sprintf("%s frozen by %s until %s: %s. New deploys are refused (an admin can deploy anyway with --override-freeze); deploys in flight go on. /deploy unfreeze %s ends it.",
			frozenWhat(cmd.Service), user, f.Until(), f.Reason, unfreezeArg(cmd.Service)))
	case commands.VerbUnfreeze:
		f, err := r.Deployer.Unfreeze(ctx, cmd.Service, user)
		if err != nil {
			return r.fail(user, err)
		}
		return r.announce(user, LevelInfo, fmt.Sprintf("%s unfrozen by %s (the freeze set by %s: %s). Deploys may start again.",
			frozenWhat(cmd.Service), user, f.By, f.Reason))
	case commands.VerbStatus:
		return r.status(ctx, user, cmd.Service)
	case commands.VerbHistory:
		return r.history(ctx, user, cmd.Service, cmd.Limit)
	case commands.VerbDiff:
		return r.diff(ctx, user, cmd)
	case commands.VerbRefresh:
		return r.refresh(ctx, user, cmd.Service)
	case commands.VerbSchedule:
		return r.schedule(ctx, user)
	}
	return r.fail(user, deployer.Errorf(deployer.CodeInvalid, "/deploy %s is not understood; see /deploy help", cmd.Verb))
}

func (r *Router) audit(user, action, service string, id uint64, detail string) {
	if r.Audit != nil {
		_ = r.Audit.Audit(deployer.AuditEntry{At: r.Deployer.Now(), User: user, Action: action, Service: service, DeployID: id, Detail: detail})
	}
}

// announce answers in the channel, for everyone to see.
func (r *Router) announce(user string, level Level, text string) Reply {
	return Reply{Messages: []Message{{Level: level, Text: text, User: user}}}
}

func frozenWhat(service string) string {
	if service == "" {
		return "Every service is"
	}
	return service + " is"
}

func unfreezeArg(service string) string {
	if service == "" {
		return "--all"
	}
	return service
}

func (r *Router) say(user string, level Level, text string) Reply {
	return Reply{Messages: []Message{{Level: level, Text: text, Ephemeral: true, User: user}}}
}

// fail answers with the error's message, phrased for the person who asked.
// What the chat does not show of it (a cause) goes to the log, here, once.
func (r *Router) fail(user string, err error) Reply {
	text, hidden := errorText(err)
	if hidden && r.Log != nil {
		r.Log.Warn("command failed", "user", user, "err", err)
	}
	return r.say(user, LevelError, text)
}

// ErrorText is an error as the person in chat should read it: a usage
// error or a held lock in its own words, else deployer.ErrorMessage, which
// leaves causes out.
func ErrorText(err error) string {
	text, _ := errorText(err)
	return text
}

// errorText is ErrorText, and whether it leaves out part of err (a cause).
func errorText(err error) (string, bool) {
	if ue, ok := errors.AsType[*commands.UsageError](err); ok {
		return ue.Error(), false
	}
	if le, ok := errors.AsType[*deployer.LockedError](err); ok {
		return lockedText(le), false
	}
	msg := deployer.ErrorMessage(err)
	return msg, msg != err.Error()
}

// lockedText says who holds a lock and, for a deploy, where it stands.
func lockedText(e *deployer.LockedError) string {
	l := e.Lock
	msg := fmt.Sprintf("%s is locked by %s since %s", l.Service, lockHolder(l), l.Since.UTC().Format(time.DateTime+" MST"))
	if e.Step != "" {
		msg += ", now at " + e.Step.Title()
	}
	if l.Reason != "" {
		msg += fmt.Sprintf(" (reason: %s)", l.Reason)
	}
	if l.DeployID != 0 {
		msg += fmt.Sprintf("; /deploy status %s says more", l.Service)
	}
	return msg
}

func lockHolder(l deployer.Lock) string {
	if l.DeployID != 0 {
		return fmt.Sprintf("deploy #%d by %s", l.DeployID, l.Holder)
	}
	return l.Holder
}

func (r *Router) status(ctx context.Context, user, service string) Reply {
	services := []string{service}
	if service == "" {
		services = r.Deployer.Services()
	}
	var b strings.Builder
	now := r.Deployer.Now()
	for i, name := range services {
		st, err := r.Deployer.Status(ctx, name)
		if err != nil {
			return r.fail(user, err)
		}
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(StatusText(st, now))
	}
	return r.say(user, LevelInfo, strings.TrimRight(b.String(), "\n"))
}

// StatusText renders one service's status: where traffic is first, then
// what is kept for a rollback, the lock, the deploy in flight and the last.
func StatusText(st deployer.Status, now time.Time) string {
	var b strings.Builder
	t := TrafficOf(st)
	if len(t.Servers) == 0 {
		fmt.Fprintf(&b, "%s: no live set yet\n", st.Service)
	} else {
		fmt.Fprintf(&b, "%s: traffic on %s, image %s", st.Service, serversWithAddrs(t.Servers), t.Image)
		if t.DeployID != 0 {
			fmt.Fprintf(&b, " (deploy #%d)", t.DeployID)
		}
		b.WriteString("\n")
	}
	if t.Moving != "" {
		fmt.Fprintf(&b, "  ! %s\n", t.Moving)
	}
	if t.Attention != "" {
		fmt.Fprintf(&b, "  ✗ %s\n", t.Attention)
	}
	if len(t.Kept) > 0 {
		fmt.Fprintf(&b, "  kept for rollback until %s: %s, image %s", deployer.TimeOfDay(t.KeptUntil), serverList(t.Kept), t.KeptImage)
		if t.Moving == "" {
			fmt.Fprintf(&b, " (/deploy rollback %s switches back)", st.Service)
		}
		b.WriteString("\n")
	}
	if st.Lock == nil {
		b.WriteString("  lock: free\n")
	} else {
		fmt.Fprintf(&b, "  lock: held by %s since %s", lockHolder(*st.Lock), deployer.TimeOfDay(st.Lock.Since))
		if st.Lock.Reason != "" {
			fmt.Fprintf(&b, " (%s)", st.Lock.Reason)
		}
		b.WriteString("\n")
	}
	for _, f := range st.Frozen {
		fmt.Fprintf(&b, "  frozen: %s, until %s, %s\n", f.About(), f.Until(), f.SetBy())
	}
	if f := st.NextFreeze; f != nil {
		fmt.Fprintf(&b, "  next freeze: %s\n", NextFreezeText(*f))
	}
	if d := st.Active; d != nil {
		fmt.Fprintf(&b, "  in flight: %s\n", inFlight(*d, now))
	}
	if d := st.Last; d != nil {
		fmt.Fprintf(&b, "  last: %s\n", historyLine(*d, now))
	}
	return b.String()
}

// NextFreezeText says when a freeze of the config starts and ends.
func NextFreezeText(f deployer.Freeze) string {
	return fmt.Sprintf("%s from %s until %s", f.About(), deployer.FreezeTime(f.Start, f.Location), f.Until())
}

// inFlight says where an active deployment stands.
func inFlight(d deployer.Deployment, now time.Time) string {
	s := fmt.Sprintf("deploy #%d by %s", d.ID, d.Requester)
	if d.ImageNew != "" {
		s += fmt.Sprintf(", %s → %s", orNone(d.ImageOld), d.ImageNew)
	}
	switch {
	case d.Phase == deployer.PhaseRunning && !d.SwitchAt.IsZero() && d.CurrentStep() == deployer.StepApproval:
		s += fmt.Sprintf(", approved, waiting for its deploy window: switches at %s", deployer.SwitchTime(d.SwitchAt, d.SwitchZone))
		return s + fmt.Sprintf(", for %s", Round(d.Duration(now)))
	}
	switch d.Phase {
	case deployer.PhaseAwaitingApproval:
		s += fmt.Sprintf(", waiting for approval until %s", deployer.TimeOfDay(d.ApprovalDeadline))
	case deployer.PhaseRollbackWindow:
		s += ", live, in its rollback window"
	case deployer.PhaseNeedsAttention:
		s += ", needs attention"
	default:
		if step := d.CurrentStep(); step != "" {
			s += ", at " + step.Title()
		}
	}
	return s + fmt.Sprintf(", for %s", Round(d.Duration(now)))
}

// historyLine is one deployment in a line: its outcome, and why it failed.
func historyLine(d deployer.Deployment, now time.Time) string {
	outcome := fmt.Sprintf("%s in %s", PhaseText(d.Phase), Round(d.Duration(now)))
	if !d.Phase.Final() {
		outcome = fmt.Sprintf("%s, %s so far", PhaseText(d.Phase), Round(d.Duration(now)))
	}
	line := fmt.Sprintf("#%d %s %s by %s, %s → %s, %s", d.ID, d.Created.UTC().Format("2006-01-02 15:04"), d.Service, d.Requester,
		orNone(d.ImageOld), orNone(d.ImageNew), outcome)
	if d.Phase == deployer.PhaseRollbackWindow {
		line += fmt.Sprintf(": traffic on %s; %s kept until %s", serverList(d.Next), serverList(d.Old), deployer.TimeOfDay(d.RollbackDeadline))
	}
	if d.Phase == deployer.PhaseFailed {
		line += " at " + FailureText(d)
	}
	for _, z := range d.Diffs {
		line += " · " + z.Summary
	}
	return line
}

func (r *Router) history(ctx context.Context, user, service string, n int) Reply {
	if n <= 0 {
		n = 10
	}
	list, err := r.Deployer.History(ctx, service, n)
	if err != nil {
		return r.fail(user, err)
	}
	if len(list) == 0 {
		return r.say(user, LevelInfo, "No deploys yet.")
	}
	now := r.Deployer.Now()
	lines := make([]string, len(list))
	for i, d := range list {
		lines[i] = historyLine(d, now)
	}
	return r.say(user, LevelInfo, strings.Join(lines, "\n"))
}

// diff shows the checks recorded for a deployment (the awaiting one, or #N).
func (r *Router) diff(ctx context.Context, user string, cmd commands.Command) Reply {
	var d deployer.Deployment
	var err error
	if cmd.DeployID != 0 {
		d, err = r.Deployer.Deployment(ctx, cmd.DeployID)
	} else {
		var st deployer.Status
		st, err = r.Deployer.Status(ctx, cmd.Service)
		switch {
		case err != nil:
		case st.Active != nil:
			d = *st.Active
		case st.Last != nil:
			d = *st.Last
		default:
			err = deployer.Errorf(deployer.CodeNotFound, "%s has no deploy to compare yet", cmd.Service)
		}
	}
	if err != nil {
		return r.fail(user, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Deploy #%d of %s: %s → %s (%s)\n", d.ID, d.Service, orNone(d.ImageOld), orNone(d.ImageNew), PhaseText(d.Phase))
	if len(d.Diffs) == 0 {
		b.WriteString("No zone comparison was recorded for this deploy (it had no live set, or did not reach the check).\n")
	}
	for _, z := range d.Diffs {
		fmt.Fprintf(&b, "%s (%s)\n", z.Summary, z.Method)
		for _, l := range z.Lines {
			fmt.Fprintf(&b, "%s\n", l)
		}
	}
	return r.say(user, LevelInfo, strings.TrimRight(b.String(), "\n"))
}

package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/greenlight/greenlight/commands"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/refresh"
)

// Refresher is what the router asks of image refresh (*refresh.Refresher):
// bake now, and show the schedules.
type Refresher interface {
	// RunNow starts a bake of service's golden image and returns once it
	// has started, with its started event, or why it cannot (no refresh
	// configured for service, a bake already running). trigger is who asked.
	RunNow(ctx context.Context, service, trigger string) (refresh.Event, error)
	Schedules(ctx context.Context) []refresh.Status
}

var _ refresh.Reporter = (*Notifier)(nil)

// errRefreshOff answers refresh and schedule when main wired no Refresher.
var errRefreshOff = deployer.Errorf(deployer.CodeNotFound, "image refresh is not configured in this greenlight")

// refresh asks for a bake of service now; the bake itself is announced by
// the Notifier, so the answer only says it started.
func (r *Router) refresh(ctx context.Context, user, service string) Reply {
	if r.Refresher == nil {
		return r.fail(user, errRefreshOff)
	}
	ev, err := r.Refresher.RunNow(ctx, service, user)
	if err != nil {
		r.audit(user, "refused refresh", service, 0, err.Error())
		return r.fail(user, err)
	}
	detail := "bake started"
	if ev.BuildID != "" {
		detail += ", build " + ev.BuildID
	}
	r.audit(user, "refresh", service, 0, detail)
	where := r.AnnounceIn
	if where == "" {
		where = "here"
	}
	return r.say(user, LevelInfo, fmt.Sprintf("Baking a new image of %s; it is announced %s when it is ready, with the command that deploys it.", service, where))
}

// schedule shows every service's bake schedule.
func (r *Router) schedule(ctx context.Context, user string) Reply {
	freezes, err := r.freezeText(ctx)
	if err != nil {
		return r.fail(user, err)
	}
	if r.Refresher == nil {
		if freezes != "" {
			return r.say(user, LevelInfo, freezes)
		}
		return r.fail(user, errRefreshOff)
	}
	list := r.Refresher.Schedules(ctx)
	text := "No service has image refresh configured."
	if len(list) > 0 {
		text = ScheduleText(list, r.Deployer.Now())
	}
	if freezes != "" {
		text += "\n" + freezes
	}
	return r.say(user, LevelInfo, text)
}

// freezeText lists each service's freezes in force and its next one;
// "" when there are none.
func (r *Router) freezeText(ctx context.Context) (string, error) {
	var lines []string
	for _, name := range r.Deployer.Services() {
		st, err := r.Deployer.Status(ctx, name)
		if err != nil {
			return "", err
		}
		for _, f := range st.Frozen {
			lines = append(lines, fmt.Sprintf("%s: frozen (%s) until %s, %s", name, f.About(), f.Until(), f.SetBy()))
		}
		if f := st.NextFreeze; f != nil {
			lines = append(lines, fmt.Sprintf("%s: next freeze %s", name, NextFreezeText(*f)))
		}
	}
	if len(lines) == 0 {
		return "", nil
	}
	return "Freezes:\n" + strings.Join(lines, "\n"), nil
}

// ScheduleText renders the schedules, one block of lines per service.
func ScheduleText(list []refresh.Status, now time.Time) string {
	var b strings.Builder
	b.WriteString("Image refresh (times in UTC):")
	for _, st := range list {
		b.WriteString("\n")
		if st.Schedule == "" {
			fmt.Fprintf(&b, "%s: no schedule (bakes only on /deploy refresh %s)", st.Service, st.Service)
		} else {
			fmt.Fprintf(&b, "%s: schedule %s", st.Service, st.Schedule)
		}
		if st.Keep > 0 {
			fmt.Fprintf(&b, ", keeps %d images", st.Keep)
		}
		if st.AutoDeploy {
			b.WriteString(", deploys each new image")
		}
		if st.Running {
			b.WriteString(" — baking now")
			if !st.Started.IsZero() && now.After(st.Started) {
				fmt.Fprintf(&b, " (for %s)", Span(now.Sub(st.Started)))
			}
		}
		switch {
		case st.Schedule == "":
		case st.Next.IsZero():
			b.WriteString("\n  next: not planned")
		case !st.Next.After(now):
			fmt.Fprintf(&b, "\n  next: %s (due now)", utcMinute(st.Next))
		default:
			fmt.Fprintf(&b, "\n  next: %s (in %s)", utcMinute(st.Next), Span(st.Next.Sub(now)))
		}
		if st.LastRun.IsZero() {
			b.WriteString("\n  last: never baked")
			continue
		}
		fmt.Fprintf(&b, "\n  last: %s (%s ago)", utcMinute(st.LastRun), Span(now.Sub(st.LastRun)))
		if st.LastResult != "" {
			b.WriteString(" — " + st.LastResult)
		}
		if st.LastImage != "" {
			fmt.Fprintf(&b, " (%s)", st.LastImage)
		}
	}
	return b.String()
}

func utcMinute(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }

// Span is a duration as people say it: "under a minute", "42m", "3h",
// "3h5m", "2d4h".
func Span(d time.Duration) string {
	d = d.Round(time.Minute)
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d < 48*time.Hour:
		h, m := d/time.Hour, (d%time.Hour)/time.Minute
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	days, h := d/(24*time.Hour), (d%(24*time.Hour))/time.Hour
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, h)
}

// Took is how long something ran, to the second, without zero parts:
// "6m12s", "3m", "1h2m".
func Took(d time.Duration) string {
	if d < time.Second {
		return Round(d).String()
	}
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Refresh announces a bake event in its job's channel, else the
// announcement channel. All events of one build share a message key, so the
// started message is updated in place by its outcome.
func (n *Notifier) Refresh(ctx context.Context, ev refresh.Event) {
	n.send(ctx, RefreshMessage(ev))
}

// refreshKey names the announcement of one build.
func refreshKey(service, build string) string { return "refresh/" + service + "/" + build }

// RefreshMessage renders a bake event as its announcement.
func RefreshMessage(ev refresh.Event) Message {
	m := Message{Key: refreshKey(ev.Service, ev.BuildID), Service: ev.Service}
	if ev.Channel != "" {
		m.Refs = map[string]string{deployer.RefChannel: ev.Channel}
	}
	if byPerson(ev.Trigger) {
		m.User = ev.Trigger
	}
	switch ev.Kind {
	case refresh.EventStarted:
		m.Level = LevelInfo
		m.Text = "Baking a new image of " + ev.Service
		if ev.Base != "" {
			m.Text += " from " + ev.Base
		}
		var about []string
		if ev.BuildID != "" {
			about = append(about, "build "+ev.BuildID)
		}
		if t := triggerText(ev.Trigger); t != "" {
			about = append(about, t)
		}
		if len(about) > 0 {
			m.Text += " (" + strings.Join(about, ", ") + ")"
		}
	case refresh.EventFinished:
		m.Level = LevelSuccess
		m.Text = finishedText(ev)
		if ev.DeployID == 0 && ev.Image.ID != "" {
			m.Actions = []Action{{ID: ActionDeployNow, Label: "Deploy now", Style: "primary",
				Value:   DeployNowValue(ev.Service, ev.Image.ID),
				Confirm: fmt.Sprintf("Start a deploy of %s with image %s?", ev.Service, imageName(ev.Image))}}
		}
	case refresh.EventFailed:
		m.Level = LevelError
		reason := "no reason was given"
		if ev.Err != nil {
			reason = ErrorText(ev.Err)
		}
		m.Text = "Baking an image of " + ev.Service + " failed"
		if ev.Took > 0 {
			m.Text += " after " + Took(ev.Took)
		}
		m.Text += ": " + reason
	default:
		m.Level = LevelInfo
		m.Text = fmt.Sprintf("Image refresh of %s: %s", ev.Service, ev.Kind)
	}
	return m
}

func finishedText(ev refresh.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Image %s ready", ev.Image.ID)
	if ev.Image.Label != "" {
		b.WriteString(": " + ev.Image.Label)
	}
	if ev.Took > 0 {
		b.WriteString(", built in " + Took(ev.Took))
	}
	switch len(ev.Pruned) {
	case 0:
	case 1:
		b.WriteString("; pruned 1 old image")
	default:
		fmt.Fprintf(&b, "; pruned %d old images", len(ev.Pruned))
	}
	for _, img := range ev.Pruned {
		b.WriteString("\n• " + imageName(img))
	}
	if ev.PruneErr != nil {
		b.WriteString("\nSome old images were not pruned: " + ErrorText(ev.PruneErr))
	}
	switch {
	case ev.DeployID != 0:
		fmt.Fprintf(&b, "\nDeploy #%d started with it; it waits for approval.", ev.DeployID)
	case ev.DeployErr != nil:
		if fe, ok := errors.AsType[*deployer.FrozenError](ev.DeployErr); ok {
			fmt.Fprintf(&b, "\nauto_deploy waits: %s is frozen (%s) until %s, %s. Deploy it once the freeze ends: /deploy %s --image %s",
				fe.Service, fe.Freeze.About(), fe.Freeze.Until(), fe.Freeze.SetBy(), fe.Service, ev.Image.ID)
			break
		}
		b.WriteString("\nNo deploy was started with it: " + ErrorText(ev.DeployErr))
	}
	return b.String()
}

// imageName is an image as people know it: its label, else its ID.
func imageName(img deployer.Image) string {
	if img.Label != "" {
		return img.Label
	}
	return img.ID
}

// byPerson reports whether a bake's trigger is a person (a user ID) rather
// than the scheduler.
func byPerson(trigger string) bool {
	return trigger != "" && trigger != "schedule" && trigger != "catch-up"
}

func triggerText(trigger string) string {
	switch trigger {
	case "":
		return ""
	case "schedule":
		return "scheduled"
	case "catch-up":
		return "catching up a missed scheduled run"
	}
	return "asked for by " + trigger
}

// deployNowPrefix separates the service from the image in a Deploy now value.
const deployNowPrefix = " image="

// DeployNowValue encodes the service and image a Deploy now button deploys:
// "ns image=private/123".
func DeployNowValue(service, image string) string { return service + deployNowPrefix + image }

// ParseDeployNowValue decodes a Deploy now button's value. It accepts only
// the form DeployNowValue makes, with a well-formed service name and image
// ID, since the value comes back from the chat service and starts a deploy.
func ParseDeployNowValue(v string) (service, image string, err error) {
	service, image, ok := strings.Cut(v, deployNowPrefix)
	if !ok {
		return "", "", deployer.Errorf(deployer.CodeInvalid, "malformed Deploy now button value %s: want SERVICE image=ID", shortQuote(v))
	}
	if !commands.ValidService(service) {
		return "", "", deployer.Errorf(deployer.CodeInvalid, "malformed Deploy now button value %s: %s is not a service name", shortQuote(v), shortQuote(service))
	}
	if !commands.ValidImage(image) {
		return "", "", deployer.Errorf(deployer.CodeInvalid, "malformed Deploy now button value %s: %s is not an image ID", shortQuote(v), shortQuote(image))
	}
	return service, image, nil
}

// DeployNowCommand is the command a Deploy now button stands for, as a
// person would type it.
func DeployNowCommand(service, image string) string {
	return commands.Command{Verb: commands.VerbDeploy, Service: service, Image: image}.String()
}

// deployNow starts the deploy a Deploy now button stands for, as if the
// person who clicked had typed it.
func (r *Router) deployNow(ctx context.Context, c Click) Reply {
	service, image, err := ParseDeployNowValue(c.Value)
	if err != nil {
		return r.fail(c.User, err)
	}
	// Parsed as typed text, so the button meets the same rules as the
	// command (a configured service, an image --image accepts); the explicit
	// verb makes an unknown service read as one.
	text := "/deploy " + string(commands.VerbDeploy) + " " + service + " --image " + image
	cmd, err := commands.Parse(text, r.Deployer.Services())
	if err != nil {
		return r.fail(c.User, err)
	}
	return r.Run(ctx, c.User, c.Channel, cmd)
}

// shortQuote quotes a value from a chat service for an error, cut to a
// length that reads in a reply.
func shortQuote(s string) string {
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q…", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

package commands

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// testServices is the service list most cases parse against.
func testServices() []string { return []string{"ns", "web", "api-gw"} }

type parseCase struct {
	name        string
	text        string
	anyService  bool     // parse with a nil service list
	services    []string // overrides testServices when non-nil
	want        Command  // for success
	err         string   // fragment of the error Message; "" means success
	suggestion  string   // wanted Suggestion on error
	usage       Verb     // whose Usage the error carries; "" is the general usage
	wantMessage string   // exact Message, when set
}

func (c parseCase) list() []string {
	switch {
	case c.anyService:
		return nil
	case c.services != nil:
		return c.services
	}
	return testServices()
}

// manyServices returns s0 … s24, more than an error message lists.
func manyServices() []string {
	var s []string
	for i := range 25 {
		s = append(s, "s"+strconv.Itoa(i))
	}
	return s
}

func deploy(service string) Command { return Command{Verb: VerbDeploy, Service: service} }

func parseCases() []parseCase {
	long500 := strings.Repeat("é", MaxReasonRunes)
	return []parseCase{
		// Help and the prefix.
		{name: "empty", text: "", want: Command{Verb: VerbHelp}},
		{name: "only spaces", text: "   \t ", want: Command{Verb: VerbHelp}},
		{name: "only slash deploy", text: "/deploy", want: Command{Verb: VerbHelp}},
		{name: "only deploy word", text: " deploy ", want: Command{Verb: VerbHelp}},
		{name: "help", text: "/deploy help", want: Command{Verb: VerbHelp}},
		{name: "help topic", text: "/deploy help status", want: Command{Verb: VerbHelp, Topic: "status"}},
		{name: "help topic upper", text: "/deploy HELP Deploy", want: Command{Verb: VerbHelp, Topic: "deploy"}},
		{name: "help help", text: "/deploy help help", want: Command{Verb: VerbHelp, Topic: "help"}},
		{name: "--help first", text: "/deploy --help", want: Command{Verb: VerbHelp}},
		{name: "-h first with topic", text: "/deploy -h lock", want: Command{Verb: VerbHelp, Topic: "lock"}},
		{name: "--help after deploy", text: "/deploy ns --dry-run --help", want: Command{Verb: VerbHelp, Topic: "deploy"}},
		{name: "--help after history", text: "/deploy history -n 5 --help", want: Command{Verb: VerbHelp, Topic: "history"}},

		// deploy.
		{name: "deploy", text: "/deploy ns", want: deploy("ns")},
		{name: "deploy without slash", text: "deploy ns", want: deploy("ns")},
		{name: "deploy bare service", text: "web", want: deploy("web")},
		{name: "deploy explicit verb", text: "/deploy deploy ns", want: deploy("ns")},
		{name: "deploy deploy deploy", text: "deploy deploy ns", want: deploy("ns")},
		{name: "deploy spaces", text: "  /deploy    ns  \t --dry-run \n", want: Command{Verb: VerbDeploy, Service: "ns", DryRun: true}},
		{name: "deploy upper case", text: "/DEPLOY NS --DRY-RUN", want: Command{Verb: VerbDeploy, Service: "ns", DryRun: true}},
		{name: "deploy dashed service", text: "/deploy api-gw", want: deploy("api-gw")},
		{name: "deploy image", text: "/deploy ns --image linode/debian12", want: Command{Verb: VerbDeploy, Service: "ns", Image: "linode/debian12"}},
		{name: "deploy image equals", text: "/deploy ns --image=private/123456", want: Command{Verb: VerbDeploy, Service: "ns", Image: "private/123456"}},
		{name: "deploy image quoted", text: `/deploy ns --image "ami-0abc"`, want: Command{Verb: VerbDeploy, Service: "ns", Image: "ami-0abc"}},
		{name: "deploy image keeps case", text: "/deploy ns --IMAGE Local/NS-1", want: Command{Verb: VerbDeploy, Service: "ns", Image: "Local/NS-1"}},
		{name: "deploy auto-approve", text: "/deploy ns --auto-approve", want: Command{Verb: VerbDeploy, Service: "ns", AutoApprove: true}},
		{name: "deploy dry-run", text: "/deploy ns --dry-run", want: Command{Verb: VerbDeploy, Service: "ns", DryRun: true}},
		{name: "deploy allow-large-change", text: "/deploy ns --allow-large-change", want: Command{Verb: VerbDeploy, Service: "ns", AllowLargeChange: true}},
		{name: "deploy allow-same-serial", text: "/deploy ns --allow-same-serial", want: Command{Verb: VerbDeploy, Service: "ns", AllowSameSerial: true}},
		{name: "deploy repeated boolean", text: "/deploy ns --dry-run --dry-run", want: Command{Verb: VerbDeploy, Service: "ns", DryRun: true}},
		{
			name: "deploy every flag",
			text: "/deploy ns --image img-1 --auto-approve --dry-run --allow-large-change --reason \"new zone\"",
			want: Command{Verb: VerbDeploy, Service: "ns", Image: "img-1", AutoApprove: true, DryRun: true, AllowLargeChange: true, Reason: "new zone"},
		},
		{name: "deploy flags before service", text: "/deploy deploy --dry-run ns", want: Command{Verb: VerbDeploy, Service: "ns", DryRun: true}},
		{name: "deploy em dash flag", text: "/deploy ns —dry-run", want: Command{Verb: VerbDeploy, Service: "ns", DryRun: true}},
		{name: "deploy en dash flag", text: "/deploy ns –auto-approve", want: Command{Verb: VerbDeploy, Service: "ns", AutoApprove: true}},

		// --reason forms.
		{name: "reason unquoted to next flag", text: "/deploy ns --reason fix the SOA serial --dry-run", want: Command{Verb: VerbDeploy, Service: "ns", DryRun: true, Reason: "fix the SOA serial"}},
		{name: "reason unquoted to end", text: "/deploy ns --reason hotfix  for   #12", want: Command{Verb: VerbDeploy, Service: "ns", Reason: "hotfix for #12"}},
		{name: "reason unquoted equals", text: "/deploy ns --reason=hotfix now --dry-run", want: Command{Verb: VerbDeploy, Service: "ns", DryRun: true, Reason: "hotfix now"}},
		{name: "reason unquoted keeps lone dash", text: "/deploy ns --reason a — b - c", want: Command{Verb: VerbDeploy, Service: "ns", Reason: "a — b - c"}},
		{name: "reason double quotes", text: `/deploy ns --reason "fix --dry-run docs" --dry-run`, want: Command{Verb: VerbDeploy, Service: "ns", DryRun: true, Reason: "fix --dry-run docs"}},
		{name: "reason single quotes", text: `/deploy ns --reason 'say "hi" twice'`, want: Command{Verb: VerbDeploy, Service: "ns", Reason: `say "hi" twice`}},
		{name: "reason smart double quotes", text: "/deploy ns --reason “new records” --dry-run", want: Command{Verb: VerbDeploy, Service: "ns", DryRun: true, Reason: "new records"}},
		{name: "reason smart single quotes", text: "/deploy ns --reason ‘new records’", want: Command{Verb: VerbDeploy, Service: "ns", Reason: "new records"}},
		{name: "reason smart apostrophe inside", text: "/deploy ns --reason ‘don’t wait’", want: Command{Verb: VerbDeploy, Service: "ns", Reason: "don’t wait"}},
		{name: "reason straight apostrophe inside", text: "/deploy ns --reason 'it's fine' --dry-run", want: Command{Verb: VerbDeploy, Service: "ns", DryRun: true, Reason: "it's fine"}},
		{name: "reason mixed straight and smart", text: "/deploy ns --reason “mixed\"", want: Command{Verb: VerbDeploy, Service: "ns", Reason: "mixed"}},
		{name: "reason quoted equals", text: `/deploy ns --reason="two words" --auto-approve`, want: Command{Verb: VerbDeploy, Service: "ns", AutoApprove: true, Reason: "two words"}},
		{name: "reason quoted collapses space", text: "/deploy ns --reason \"  a \n\t b  \"", want: Command{Verb: VerbDeploy, Service: "ns", Reason: "a b"}},
		{name: "reason quote inside word", text: `/deploy ns --reason 5" screen`, want: Command{Verb: VerbDeploy, Service: "ns", Reason: `5" screen`}},
		{name: "reason 500 characters", text: "/deploy ns --reason " + long500, want: Command{Verb: VerbDeploy, Service: "ns", Reason: long500}},
		{name: "reason before service", text: `/deploy deploy --reason "x y" ns`, want: Command{Verb: VerbDeploy, Service: "ns", Reason: "x y"}},

		// Other verbs.
		{name: "diff", text: "/deploy diff ns", want: Command{Verb: VerbDiff, Service: "ns"}},
		{name: "diff id", text: "/deploy diff ns #12", want: Command{Verb: VerbDiff, Service: "ns", DeployID: 12}},
		{name: "diff id first", text: "/deploy DIFF #12 NS", want: Command{Verb: VerbDiff, Service: "ns", DeployID: 12}},
		{name: "diff id leading zeros", text: "/deploy diff ns #007", want: Command{Verb: VerbDiff, Service: "ns", DeployID: 7}},
		{name: "status", text: "/deploy status", want: Command{Verb: VerbStatus}},
		{name: "status service", text: "/deploy status web", want: Command{Verb: VerbStatus, Service: "web"}},
		{name: "history", text: "/deploy history", want: Command{Verb: VerbHistory, Limit: 10}},
		{name: "history service", text: "/deploy history ns", want: Command{Verb: VerbHistory, Service: "ns", Limit: 10}},
		{name: "history -n", text: "/deploy history ns -n 5", want: Command{Verb: VerbHistory, Service: "ns", Limit: 5}},
		{name: "history -n=", text: "/deploy history -n=25", want: Command{Verb: VerbHistory, Limit: 25}},
		{name: "history -N", text: "/deploy history -N 1", want: Command{Verb: VerbHistory, Limit: 1}},
		{name: "history --limit", text: "/deploy history --limit 100 web", want: Command{Verb: VerbHistory, Service: "web", Limit: 100}},
		{name: "history --limit=", text: "/deploy history --limit=7", want: Command{Verb: VerbHistory, Limit: 7}},
		{name: "history -n 10", text: "/deploy history -n 10", want: Command{Verb: VerbHistory, Limit: 10}},
		{name: "approve", text: "/deploy approve", want: Command{Verb: VerbApprove}},
		{name: "approve service", text: "/deploy approve ns", want: Command{Verb: VerbApprove, Service: "ns"}},
		{name: "approve id", text: "/deploy approve #3", want: Command{Verb: VerbApprove, DeployID: 3}},
		{name: "approve service id", text: "/deploy approve ns #3", want: Command{Verb: VerbApprove, Service: "ns", DeployID: 3}},
		{name: "abort", text: "/deploy abort ns", want: Command{Verb: VerbAbort, Service: "ns"}},
		{name: "abort id", text: "/deploy abort #18446744073709551615", want: Command{Verb: VerbAbort, DeployID: 18446744073709551615}},
		{name: "rollback", text: "/deploy rollback", want: Command{Verb: VerbRollback}},
		{name: "rollback service id", text: "/deploy rollback web #9", want: Command{Verb: VerbRollback, Service: "web", DeployID: 9}},
		{name: "retire", text: "/deploy retire", want: Command{Verb: VerbRetire}},
		{name: "freeze for", text: "/deploy freeze ns --for 2h --reason incident 42", want: Command{Verb: VerbFreeze, Service: "ns", For: 2 * time.Hour, Reason: "incident 42"}},
		{name: "freeze all until", text: "/deploy freeze --all --until 2026-12-27T08:00Z --reason holidays", want: Command{Verb: VerbFreeze, All: true, Until: time.Date(2026, 12, 27, 8, 0, 0, 0, time.UTC), Reason: "holidays"}},
		{name: "freeze until offset", text: "/deploy freeze ns --until=2026-12-27T09:00:30+01:00 --reason x", want: Command{Verb: VerbFreeze, Service: "ns", Until: time.Date(2026, 12, 27, 8, 0, 30, 0, time.UTC), Reason: "x"}},
		{name: "freeze open-ended", text: "/deploy freeze ns --reason x", want: Command{Verb: VerbFreeze, Service: "ns", Reason: "x"}},
		{name: "unfreeze", text: "/deploy unfreeze ns", want: Command{Verb: VerbUnfreeze, Service: "ns"}},
		{name: "unfreeze all", text: "/deploy unfreeze --all", want: Command{Verb: VerbUnfreeze, All: true}},
		{name: "override freeze", text: "/deploy ns --override-freeze --reason fix", want: Command{Verb: VerbDeploy, Service: "ns", OverrideFreeze: true, Reason: "fix"}},
		{name: "freeze without reason", text: "/deploy freeze ns --for 2h", usage: VerbFreeze, err: "freeze needs --reason TEXT"},
		{name: "freeze without service", text: "/deploy freeze --reason x", usage: VerbFreeze, err: "needs a service, or --all"},
		{name: "freeze service and all", text: "/deploy freeze ns --all --reason x", usage: VerbFreeze, err: "a service or --all, not both"},
		{name: "freeze for and until", text: "/deploy freeze ns --for 2h --until 2026-12-27T08:00Z --reason x", usage: VerbFreeze, err: "--for or --until, not both"},
		{name: "freeze for zero", text: "/deploy freeze ns --for 0s --reason x", usage: VerbFreeze, err: "--for must be more than 0"},
		{name: "freeze for words", text: "/deploy freeze ns --for soon --reason x", usage: VerbFreeze, err: "--for takes a duration"},
		{name: "freeze until without zone", text: "/deploy freeze ns --until 2026-12-27T08:00 --reason x", usage: VerbFreeze, err: "--until takes a time with its offset"},
		{name: "override on freeze", text: "/deploy freeze ns --override-freeze --reason x", usage: VerbFreeze, err: "--override-freeze is only for deploy"},
		{name: "retire service id", text: "/deploy retire ns #9", want: Command{Verb: VerbRetire, Service: "ns", DeployID: 9}},
		{name: "lock", text: "/deploy lock ns", want: Command{Verb: VerbLock, Service: "ns"}},
		{name: "lock reason", text: "/deploy lock ns --reason maintenance window", want: Command{Verb: VerbLock, Service: "ns", Reason: "maintenance window"}},
		{name: "lock reason equals quoted", text: "/deploy lock ns --reason=“zone freeze”", want: Command{Verb: VerbLock, Service: "ns", Reason: "zone freeze"}},
		{name: "unlock", text: "/deploy unlock ns", want: Command{Verb: VerbUnlock, Service: "ns"}},
		{name: "unlock force", text: "/deploy unlock ns --force", want: Command{Verb: VerbUnlock, Service: "ns", Force: true}},
		{name: "unlock force first", text: "/deploy unlock --FORCE ns", want: Command{Verb: VerbUnlock, Service: "ns", Force: true}},
		{name: "resolve to old", text: "/deploy resolve ns --to old", want: Command{Verb: VerbResolve, Service: "ns", To: "old"}},
		{name: "resolve a deploy to new", text: "/deploy resolve ns #7 --to=new", want: Command{Verb: VerbResolve, Service: "ns", DeployID: 7, To: "new"}},
		{name: "refresh", text: "/deploy refresh ns", want: Command{Verb: VerbRefresh, Service: "ns"}},
		{name: "schedule", text: "/deploy schedule", want: Command{Verb: VerbSchedule}},
		{name: "refresh upper case", text: "/DEPLOY REFRESH Web", want: Command{Verb: VerbRefresh, Service: "web"}},
		{name: "refresh any service", text: "/deploy refresh mail", anyService: true, want: Command{Verb: VerbRefresh, Service: "mail"}},
		{name: "schedule upper case", text: "Schedule", want: Command{Verb: VerbSchedule}},
		{name: "refresh --help", text: "/deploy refresh ns --help", want: Command{Verb: VerbHelp, Topic: "refresh"}},
		{name: "help schedule", text: "/deploy help schedule", want: Command{Verb: VerbHelp, Topic: "schedule"}},

		// Service lists.
		{name: "any service", text: "/deploy mail", anyService: true, want: deploy("mail")},
		{name: "any service lower-cased", text: "/deploy lock Mail-2", anyService: true, want: Command{Verb: VerbLock, Service: "mail-2"}},
		{name: "any service near a verb needs deploy", text: "/deploy deploy log", anyService: true, want: deploy("log")},
		{name: "configured names lower-cased", text: "/deploy ns", services: []string{"NS"}, want: deploy("ns")},
		{name: "verb wins over service", text: "/deploy status", services: []string{"status"}, want: Command{Verb: VerbStatus}},
		{name: "service named like verb", text: "/deploy deploy status", services: []string{"status"}, want: deploy("status")},
		{name: "known service near a verb", text: "/deploy log", services: []string{"log"}, want: deploy("log")},
		{name: "text at the byte limit", text: "/deploy ns" + strings.Repeat(" ", MaxTextBytes-len("/deploy ns")), want: deploy("ns")},

		// Errors: the text as a whole.
		{name: "too long", text: "/deploy ns" + strings.Repeat(" ", MaxTextBytes), err: "too long: 4010 bytes, the limit is 4000"},
		{name: "invalid utf-8", text: "/deploy n\xffs", err: "not valid UTF-8"},
		{name: "control character", text: "/deploy ns --reason \x1b[31mred", err: "control character (U+001B)"},

		// Errors: the first word.
		{name: "verb typo transposed", text: "/deploy stauts", err: `"stauts" is not a command`, suggestion: "status"},
		{name: "verb typo dropped letter", text: "/deploy rollbak ns", err: `"rollbak"`, suggestion: "rollback"},
		{name: "verb unique prefix", text: "/deploy hist", err: `"hist"`, suggestion: "history"},
		{name: "service typo", text: "/deploy nss", err: `"nss" is not a command or a known service`, suggestion: "ns"},
		{name: "verb typo any service", text: "/deploy lok ns", anyService: true, err: "/deploy deploy lok", suggestion: "lock"},
		{name: "nothing matches", text: "/deploy zzz", wantMessage: `"zzz" is not a command or a known service (ns, web, api-gw)`},
		{name: "nothing matches any service", text: "/deploy Foo_Bar", anyService: true, err: `"Foo_Bar" is not a command or a valid service name`},
		{name: "nothing matches no services", text: "/deploy ns", services: []string{}, err: "no services are configured"},
		{name: "short word suggests nothing", text: "/deploy x", err: `"x" is not a command`},
		{name: "flag first", text: "/deploy --dry-run ns", err: "put the service first, then --dry-run"},
		{name: "unknown flag first", text: "/deploy --frobnicate", err: `"--frobnicate" is not a command`},
		{name: "deploy number first", text: "/deploy #4", err: `needs a command first, e.g. /deploy approve #4`},
		{name: "second slash deploy", text: "/deploy /deploy ns", err: `"/deploy" is not a command`, suggestion: "deploy"},

		// Errors: missing service.
		{name: "deploy needs service", text: "/deploy deploy", usage: VerbDeploy, wantMessage: "deploy needs a service: ns, web, api-gw"},
		{name: "deploy needs service only flags", text: "/deploy deploy --dry-run", usage: VerbDeploy, err: "deploy needs a service"},
		{name: "diff needs service", text: "/deploy diff #3", usage: VerbDiff, err: "diff needs a service: ns"},
		{name: "lock needs service", text: "/deploy lock --reason x", usage: VerbLock, err: "lock needs a service"},
		{name: "unlock needs service", text: "/deploy unlock", usage: VerbUnlock, anyService: true, wantMessage: "unlock needs a service"},
		{name: "resolve needs --to", text: "/deploy resolve ns", usage: VerbResolve, wantMessage: "resolve needs --to old (keep the old set) or --to new (keep the new set)"},
		{name: "resolve to neither", text: "/deploy resolve ns --to nwe", usage: VerbResolve, err: `--to takes old or new, not "nwe"`, suggestion: "new"},
		{name: "to is only for resolve", text: "/deploy ns --to old", usage: VerbDeploy, wantMessage: "--to is only for resolve"},
		{name: "refresh needs service", text: "/deploy refresh", usage: VerbRefresh, wantMessage: "refresh needs a service: ns, web, api-gw"},
		{name: "refresh unknown service", text: "/deploy refresh mail", usage: VerbRefresh, wantMessage: `unknown service "mail"; known services: ns, web, api-gw`},
		{name: "refresh service typo", text: "/deploy refresh nss", usage: VerbRefresh, err: `unknown service "nss"`, suggestion: "ns"},
		{name: "refresh verb typo", text: "/deploy refersh ns", err: `"refersh" is not a command`, suggestion: "refresh"},
		{name: "refresh takes no image", text: "/deploy refresh ns --image x", usage: VerbRefresh, wantMessage: "--image is only for deploy"},
		{name: "refresh takes no deploy number", text: "/deploy refresh ns #3", usage: VerbRefresh, err: "only go with diff, approve, abort, rollback, retire and resolve"},
		{name: "schedule takes no service", text: "/deploy schedule web", usage: VerbSchedule, wantMessage: `schedule takes no arguments, but got "web"`},
		{name: "schedule takes no flags", text: "/deploy schedule --dry-run", usage: VerbSchedule, wantMessage: "--dry-run is only for deploy"},
		{name: "refresh needs service none configured", text: "/deploy refresh", services: []string{}, usage: VerbRefresh, err: "none are configured"},

		// Errors: unknown or bad service.
		{name: "unknown service lists known", text: "/deploy status mail", usage: VerbStatus, err: `unknown service "mail"; known services: ns, web, api-gw`},
		{name: "unknown service suggestion", text: "/deploy lock nss", usage: VerbLock, err: `unknown service "nss"`, suggestion: "ns"},
		{name: "unknown service after deploy", text: "/deploy deploy wbe", usage: VerbDeploy, err: `unknown service "wbe"`, suggestion: "web"},
		{name: "unknown service long list", text: "/deploy status zz", services: manyServices(), usage: VerbStatus, err: "s19 and 5 more"},
		{name: "unknown service none configured", text: "/deploy status ns", services: []string{}, usage: VerbStatus, err: "no services are configured"},
		{name: "number as service hints #N", text: "/deploy approve 42", usage: VerbApprove, err: "deploy numbers are written #42"},
		{name: "number as service hints -n", text: "/deploy history 5", usage: VerbHistory, err: "use -n 5"},
		{name: "bad service name", text: "/deploy status ns_", usage: VerbStatus, err: `"ns_" is not a valid service name`, suggestion: "ns"},
		{name: "bad service name too long", text: "/deploy status " + strings.Repeat("a", 64), anyService: true, usage: VerbStatus, err: "not a valid service name"},

		// Errors: flags.
		{name: "flag typo", text: "/deploy ns --auto-aprove", usage: VerbDeploy, err: `deploy has no flag "--auto-aprove"`, suggestion: "--auto-approve"},
		{name: "flag typo equals", text: "/deploy ns --imgae=x", usage: VerbDeploy, err: `no flag "--imgae"`, suggestion: "--image"},
		{name: "flag single dash", text: "/deploy unlock ns -force", usage: VerbUnlock, err: `no flag "-force"`, suggestion: "--force"},
		{name: "flag without dash", text: "/deploy ns --dryrun", usage: VerbDeploy, err: "no flag", suggestion: "--dry-run"},
		{name: "flag double dash n", text: "/deploy history --n 5", usage: VerbHistory, err: `no flag "--n"`, suggestion: "-n"},
		{name: "flag unknown", text: "/deploy ns --yolo", usage: VerbDeploy, err: `deploy has no flag "--yolo"`},
		{name: "flag on verb without flags", text: "/deploy status --verbose", usage: VerbStatus, err: `status takes no flags, but got "--verbose"`},
		{name: "force is only for unlock", text: "/deploy lock ns --force", usage: VerbLock, wantMessage: "--force is only for unlock"},
		{name: "dry-run is only for deploy", text: "/deploy status --dry-run", usage: VerbStatus, wantMessage: "--dry-run is only for deploy"},
		{name: "reason is only for deploy and lock", text: "/deploy unlock ns --reason done", usage: VerbUnlock, wantMessage: "--reason is only for deploy, lock and freeze"},
		{name: "-n is only for history", text: "/deploy ns -n 3", usage: VerbDeploy, wantMessage: "-n is only for history"},
		{name: "--limit is only for history", text: "/deploy status --limit=3", usage: VerbStatus, wantMessage: "--limit is only for history"},
		{name: "boolean with value", text: "/deploy ns --dry-run=true", usage: VerbDeploy, wantMessage: "--dry-run takes no value"},
		{name: "help with value", text: "/deploy ns --help=x", usage: VerbDeploy, wantMessage: "--help takes no value"},
		{name: "image missing at end", text: "/deploy ns --image", usage: VerbDeploy, wantMessage: "--image needs an image ID"},
		{name: "image missing before flag", text: "/deploy ns --image --dry-run", usage: VerbDeploy, wantMessage: "--image needs an image ID"},
		{name: "image missing after equals", text: "/deploy ns --image=", usage: VerbDeploy, wantMessage: "--image needs an image ID"},
		{name: "image bad", text: "/deploy ns --image ../etc", usage: VerbDeploy, err: `"../etc" is not an image ID`},
		{name: "image quoted with space", text: `/deploy ns --image "a b"`, usage: VerbDeploy, err: `"a b" is not an image ID`},
		{name: "image twice", text: "/deploy ns --image a --image=b", usage: VerbDeploy, wantMessage: "--image is given twice"},
		{name: "reason missing at end", text: "/deploy lock ns --reason", usage: VerbLock, wantMessage: "--reason needs some text"},
		{name: "reason missing before flag", text: "/deploy ns --reason --dry-run", usage: VerbDeploy, wantMessage: "--reason needs some text"},
		{name: "reason empty quotes", text: `/deploy ns --reason ""`, usage: VerbDeploy, wantMessage: "--reason needs some text"},
		{name: "reason twice", text: "/deploy ns --reason a --reason b", usage: VerbDeploy, wantMessage: "--reason is given twice"},
		{name: "reason too long", text: "/deploy ns --reason " + long500 + "x", usage: VerbDeploy, err: "--reason is too long: 501 characters, the limit is 500"},
		{name: "reason unterminated double", text: `/deploy ns --reason "forgot to close`, usage: VerbDeploy, err: `--reason has an opening " but no closing "`},
		{name: "reason unterminated smart", text: "/deploy lock ns --reason “forgot", usage: VerbLock, err: "--reason has an opening “ but no closing ”"},
		{name: "reason unterminated smart single", text: "/deploy ns --reason ‘forgot", usage: VerbDeploy, err: "--reason has an opening ‘ but no closing ’"},
		{name: "reason unterminated single", text: "/deploy ns --reason 'it's", usage: VerbDeploy, err: "--reason has an opening ' but no closing '"},
		{name: "reason quote glued to word", text: `/deploy ns --reason "a"b`, usage: VerbDeploy, err: "no closing"},
		{name: "n missing", text: "/deploy history -n", usage: VerbHistory, wantMessage: "-n needs a number from 1 to 100"},
		{name: "n missing before flag", text: "/deploy history --limit --help", usage: VerbHistory, wantMessage: "--limit needs a number from 1 to 100"},
		{name: "n not a number", text: "/deploy history -n ten", usage: VerbHistory, wantMessage: `-n needs a whole number from 1 to 100, not "ten"`},
		{name: "n fraction", text: "/deploy history -n=1.5", usage: VerbHistory, err: `not "1.5"`},
		{name: "n zero", text: "/deploy history -n 0", usage: VerbHistory, wantMessage: "-n must be between 1 and 100, not 0"},
		{name: "n too big", text: "/deploy history -n 101", usage: VerbHistory, wantMessage: "-n must be between 1 and 100, not 101"},
		{name: "n negative", text: "/deploy history -n -5", usage: VerbHistory, wantMessage: "-n must be between 1 and 100, not -5"},
		{name: "n overflow", text: "/deploy history -n 99999999999999999999", usage: VerbHistory, err: "must be between 1 and 100"},
		{name: "n twice", text: "/deploy history -n 3 --limit 4", usage: VerbHistory, wantMessage: "--limit is given twice"},

		// Errors: #N.
		{name: "id not a number", text: "/deploy approve #abc", usage: VerbApprove, wantMessage: `"#abc" is not a deploy number; write it like #42`},
		{name: "id bare hash", text: "/deploy abort ns #", usage: VerbAbort, err: `"#" is not a deploy number`},
		{name: "id zero", text: "/deploy rollback #0", usage: VerbRollback, wantMessage: "deploy numbers start at #1"},
		{name: "id overflow", text: "/deploy diff ns #18446744073709551616", usage: VerbDiff, err: "too big for a deploy number"},
		{name: "id twice", text: "/deploy approve #1 #2", usage: VerbApprove, wantMessage: `give one deploy number, not #1 and "#2"`},
		{name: "id on verb without ids", text: "/deploy status ns #3", usage: VerbStatus, err: `deploy numbers like "#3" only go with diff, approve, abort, rollback, retire and resolve`},
		{name: "id on deploy", text: "/deploy ns #3", usage: VerbDeploy, err: "only go with diff"},

		// Errors: extra words.
		{name: "extra service", text: "/deploy status ns web", usage: VerbStatus, wantMessage: `unexpected "web": status takes one service`},
		{name: "extra after deploy hints reason", text: "/deploy ns hotfix for serial", usage: VerbDeploy, err: `unexpected "hotfix" after the service; to give a reason, use --reason TEXT`},
		{name: "extra after quoted reason", text: `/deploy lock ns --reason "a" b`, usage: VerbLock, err: `unexpected "b"`},
		{name: "extra after schedule", text: "/deploy schedule ns", usage: VerbSchedule, wantMessage: `schedule takes no arguments, but got "ns"`},
		{name: "extra help topic", text: "/deploy help lock unlock", usage: VerbHelp, wantMessage: `help takes one topic, but "unlock" came after lock`},
		{name: "extra after refresh", text: "/deploy refresh ns web", usage: VerbRefresh, err: `unexpected "web"`},

		// Errors: help topics.
		{name: "help topic typo", text: "/deploy help stauts", usage: VerbHelp, wantMessage: `there is no help for "stauts"`, suggestion: "status"},
		{name: "help topic unknown", text: "/deploy help zzz", usage: VerbHelp, err: "the topics are the commands: deploy, diff,"},
	}
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.text, tc.list())
			if tc.err == "" && tc.wantMessage == "" {
				if err != nil {
					t.Fatalf("Parse(%q): unexpected error: %v", tc.text, err)
				}
				if got != tc.want {
					t.Fatalf("Parse(%q)\n got: %#v\nwant: %#v", tc.text, got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%q) = %#v, want an error containing %q", tc.text, got, tc.err+tc.wantMessage)
			}
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("Parse(%q): error %T is not a *UsageError: %v", tc.text, err, err)
			}
			if got != (Command{}) {
				t.Errorf("Parse(%q) returned %#v with its error, want the zero Command", tc.text, got)
			}
			if tc.wantMessage != "" && ue.Message != tc.wantMessage {
				t.Errorf("Parse(%q) message\n got: %q\nwant: %q", tc.text, ue.Message, tc.wantMessage)
			}
			if !strings.Contains(ue.Message, tc.err) {
				t.Errorf("Parse(%q) message\n got: %q\nwant it to contain: %q", tc.text, ue.Message, tc.err)
			}
			if ue.Suggestion != tc.suggestion {
				t.Errorf("Parse(%q) suggestion: got %q, want %q", tc.text, ue.Suggestion, tc.suggestion)
			}
			if want := Usage(tc.usage); ue.Usage != want {
				t.Errorf("Parse(%q) usage\n got: %q\nwant: %q", tc.text, ue.Usage, want)
			}
		})
	}
}

// TestParseRoundTrip checks the promise String makes on every table input.
func TestParseRoundTrip(t *testing.T) {
	for _, tc := range parseCases() {
		c, err := Parse(tc.text, tc.list())
		if err != nil {
			continue
		}
		again, err := Parse(c.String(), nil)
		if err != nil {
			t.Errorf("%s: Parse(%q) failed: %v", tc.name, c.String(), err)
			continue
		}
		if again != c {
			t.Errorf("%s: Parse(%q)\n got: %#v\nwant: %#v", tc.name, c.String(), again, c)
		}
	}
}

func TestString(t *testing.T) {
	cases := []struct {
		name string
		cmd  Command
		want string
	}{
		{"help", Command{Verb: VerbHelp}, "/deploy help"},
		{"help topic", Command{Verb: VerbHelp, Topic: "lock"}, "/deploy help lock"},
		{"deploy", deploy("ns"), "/deploy ns"},
		{"deploy service named like a verb", deploy("status"), "/deploy deploy status"},
		{"deploy service near a verb", deploy("log"), "/deploy deploy log"},
		{
			"deploy every flag",
			Command{Verb: VerbDeploy, Service: "ns", Image: "img", AutoApprove: true, DryRun: true, AllowLargeChange: true, Reason: "why not"},
			`/deploy ns --image img --auto-approve --dry-run --allow-large-change --reason "why not"`,
		},
		{"reason with double quote", Command{Verb: VerbLock, Service: "ns", Reason: `say "hi" now`}, `/deploy lock ns --reason 'say "hi" now'`},
		{"reason with both quotes", Command{Verb: VerbLock, Service: "ns", Reason: `a" b' c`}, `/deploy lock ns --reason a" b' c`},
		{"diff", Command{Verb: VerbDiff, Service: "ns", DeployID: 4}, "/deploy diff ns #4"},
		{"history default limit", Command{Verb: VerbHistory, Limit: 10}, "/deploy history"},
		{"history limit", Command{Verb: VerbHistory, Service: "ns", Limit: 3}, "/deploy history ns -n 3"},
		{"unlock force", Command{Verb: VerbUnlock, Service: "ns", Force: true}, "/deploy unlock ns --force"},
		{"schedule", Command{Verb: VerbSchedule}, "/deploy schedule"},
	}
	for _, tc := range cases {
		if got := tc.cmd.String(); got != tc.want {
			t.Errorf("%s: String()\n got: %q\nwant: %q", tc.name, got, tc.want)
		}
		if got, err := Parse(tc.cmd.String(), nil); err != nil || got != tc.cmd {
			t.Errorf("%s: Parse(%q) = %#v, %v; want %#v", tc.name, tc.cmd.String(), got, err, tc.cmd)
		}
	}
}

func TestUsageErrorError(t *testing.T) {
	cases := []struct {
		name string
		err  UsageError
		want string
	}{
		{"with suggestion", UsageError{Message: `"stauts" is not a command`, Suggestion: "status", Usage: "U"}, "\"stauts\" is not a command; did you mean status?\nusage: U"},
		{"without suggestion", UsageError{Message: "m", Usage: "U"}, "m\nusage: U"},
	}
	for _, tc := range cases {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%s: Error()\n got: %q\nwant: %q", tc.name, got, tc.want)
		}
	}
}

func TestUsageAndHelp(t *testing.T) {
	lines := strings.Split(Help(), "\n")
	if len(lines) != len(verbSpecs) {
		t.Fatalf("Help() has %d lines, want one per verb (%d):\n%s", len(lines), len(verbSpecs), Help())
	}
	for i, spec := range verbSpecs {
		v := spec.verb
		u := Usage(v)
		if !strings.HasPrefix(u, "/deploy") || strings.Contains(u, "\n") {
			t.Errorf("Usage(%q) = %q, want one line starting with /deploy", v, u)
		}
		if v != VerbDeploy && !strings.HasPrefix(u, "/deploy "+string(v)) {
			t.Errorf("Usage(%q) = %q, want it to name the verb", v, u)
		}
		if !strings.HasPrefix(lines[i], u+" — ") || len(lines[i]) <= len(u)+len(" — ") {
			t.Errorf("Help() line %d = %q, want %q and a description", i, lines[i], u)
		}
	}
	if got := Usage("nope"); got != generalUsage || !strings.Contains(got, "/deploy help") {
		t.Errorf("Usage(unknown) = %q, want the general usage pointing to /deploy help", got)
	}
	for _, want := range []string{
		"/deploy refresh SERVICE — bake a fresh golden image",
		"/deploy schedule — show each service's image refresh schedule",
	} {
		if !strings.Contains(Help(), want) {
			t.Errorf("Help() does not describe %q:\n%s", want, Help())
		}
	}
	if Usage(VerbHistory) != "/deploy history [SERVICE] [-n N]" {
		t.Errorf("Usage(history) = %q", Usage(VerbHistory))
	}
}

func TestValidServiceAndImage(t *testing.T) {
	services := []struct {
		name string
		want bool
	}{
		{"ns", true}, {"api-gw", true}, {"0ns", true}, {strings.Repeat("a", 63), true},
		{"", false}, {"NS", false}, {"-ns", false}, {"ns_1", false}, {"ns 1", false}, {strings.Repeat("a", 64), false},
	}
	for _, tc := range services {
		if got := ValidService(tc.name); got != tc.want {
			t.Errorf("ValidService(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
	images := []struct {
		id   string
		want bool
	}{
		{"private/123", true}, {"linode/debian12", true}, {"ami-0abc", true}, {"Local/NS-1", true}, {strings.Repeat("a", MaxImageBytes), true},
		{"", false}, {"../etc", false}, {"a b", false}, {"-x", false}, {`"x"`, false}, {"x=y", false}, {strings.Repeat("a", MaxImageBytes+1), false},
	}
	for _, tc := range images {
		if got := ValidImage(tc.id); got != tc.want {
			t.Errorf("ValidImage(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	cases := []struct {
		word       string
		candidates []string
		want       string
	}{
		{"stauts", verbNames(), "status"},
		{"rollbak", verbNames(), "rollback"},
		{"lokc", verbNames(), "lock"},
		{"sched", verbNames(), "schedule"},
		{"s", verbNames(), ""}, // status and schedule: ambiguous prefix
		{"nss", []string{"ns"}, "ns"},
		{"sn", []string{"ns"}, "ns"},
		{"x", []string{"ns"}, ""},    // too far for a two-letter name
		{"abc", []string{"ns"}, ""},  // likewise
		{"n", []string{"ns"}, "ns"},  // prefix
		{"ns", []string{"ns"}, "ns"}, // exact
		{"", verbNames(), ""},
	}
	for _, tc := range cases {
		if got := suggest(tc.word, tc.candidates); got != tc.want {
			t.Errorf("suggest(%q, %v) = %q, want %q", tc.word, tc.candidates, got, tc.want)
		}
	}
}

func TestDistance(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"status", "stauts", 1},
		{"lock", "log", 2}, {"kitten", "sitting", 3}, {"ca", "abc", 3},
	}
	for _, tc := range cases {
		if got := distance([]rune(tc.a), []rune(tc.b)); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases() {
		f.Add(tc.text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, services := range [][]string{nil, testServices(), {}} {
			c, err := Parse(text, services)
			if err != nil {
				var ue *UsageError
				if !errors.As(err, &ue) {
					t.Fatalf("Parse(%q, %v): error %T is not a *UsageError: %v", text, services, err, err)
				}
				if ue.Message == "" || ue.Usage == "" {
					t.Fatalf("Parse(%q, %v): empty Message or Usage: %#v", text, services, ue)
				}
				continue
			}
			checkInvariants(t, text, c)
			s := c.String()
			again, err := Parse(s, nil)
			if err != nil {
				t.Fatalf("Parse(%q, %v) = %#v\nbut Parse(String() = %q, nil) failed: %v", text, services, c, s, err)
			}
			if again != c {
				t.Fatalf("Parse(%q, %v) = %#v\nParse(String() = %q, nil) = %#v", text, services, c, s, again)
			}
		}
	})
}

// checkInvariants asserts what callers may rely on in every parsed Command.
func checkInvariants(t *testing.T, text string, c Command) {
	t.Helper()
	if _, ok := specOf(c.Verb); !ok {
		t.Fatalf("Parse(%q): unknown verb %q", text, c.Verb)
	}
	if c.Service != "" && !validName(c.Service) {
		t.Fatalf("Parse(%q): malformed service %q", text, c.Service)
	}
	if (c.Verb == VerbHistory) != (c.Limit != 0) || c.Limit < 0 || c.Limit > MaxLimit {
		t.Fatalf("Parse(%q): limit %d for %s", text, c.Limit, c.Verb)
	}
	if n := utf8.RuneCountInString(c.Reason); n > MaxReasonRunes || c.Reason != strings.Join(strings.Fields(c.Reason), " ") {
		t.Fatalf("Parse(%q): reason %q is not one trimmed line of at most %d characters", text, c.Reason, MaxReasonRunes)
	}
	if c.Topic != "" {
		if _, ok := specOf(Verb(c.Topic)); !ok || c.Verb != VerbHelp {
			t.Fatalf("Parse(%q): topic %q on %s", text, c.Topic, c.Verb)
		}
	}
}

// TestVerbTable checks that every verb of the table parses, has its usage
// and a line in help, and is suggested for a near miss.
func TestVerbTable(t *testing.T) {
	// What a verb needs beyond a service and a deploy number to parse.
	needs := map[Verb]string{VerbResolve: " --to old", VerbFreeze: " --reason maintenance"}
	help := strings.Split(Help(), "\n")
	if len(help) != len(verbSpecs) {
		t.Fatalf("Help() has %d lines for %d verbs:\n%s", len(help), len(verbSpecs), Help())
	}
	seen := map[Verb]bool{}
	for i, s := range verbSpecs {
		if seen[s.verb] {
			t.Errorf("verb %s is in the table twice", s.verb)
		}
		seen[s.verb] = true
		if s.usage == "" || s.desc == "" || Usage(s.verb) != s.usage {
			t.Errorf("verb %s: usage %q, desc %q, Usage() %q", s.verb, s.usage, s.desc, Usage(s.verb))
		}
		if want := s.usage + " — " + s.desc; help[i] != want {
			t.Errorf("Help() line %d = %q, want %q", i, help[i], want)
		}
		text := "/deploy " + string(s.verb)
		want := Command{Verb: s.verb}
		if s.service != noService {
			text += " ns"
			want.Service = "ns"
		}
		if s.deployID {
			text += " #3"
			want.DeployID = 3
		}
		text += needs[s.verb]
		got, err := Parse(text, testServices())
		if err != nil {
			t.Errorf("Parse(%q): %v", text, err)
			continue
		}
		if got.Verb != want.Verb || got.Service != want.Service || got.DeployID != want.DeployID {
			t.Errorf("Parse(%q) = %+v, want verb %s, service %q, #%d", text, got, want.Verb, want.Service, want.DeployID)
		}
		for _, f := range s.flags {
			if _, ok := flagOf(f); !ok {
				t.Errorf("verb %s takes %s, which the parser does not know", s.verb, f)
			}
		}
		for _, text := range []string{"/deploy help " + string(s.verb), "/deploy " + string(s.verb) + " --help"} {
			if s.verb == VerbHelp && strings.HasSuffix(text, "--help") {
				continue // help --help is the general help
			}
			if got, err := Parse(text, testServices()); err != nil || got != (Command{Verb: VerbHelp, Topic: string(s.verb)}) {
				t.Errorf("Parse(%q) = %+v, %v; want help on %s", text, got, err, s.verb)
			}
		}
		miss := "/deploy " + string(s.verb[:len(s.verb)-1])
		_, err = Parse(miss, testServices())
		if ue, ok := errors.AsType[*UsageError](err); !ok || ue.Suggestion != string(s.verb) {
			t.Errorf("Parse(%q) = %v; want a suggestion of %s", miss, err, s.verb)
		}
	}
	for _, v := range []Verb{VerbDeploy, VerbDiff, VerbStatus, VerbHistory, VerbApprove, VerbAbort, VerbRollback, VerbRetire,
		VerbLock, VerbUnlock, VerbResolve, VerbFreeze, VerbUnfreeze, VerbRefresh, VerbSchedule, VerbHelp} {
		if !seen[v] {
			t.Errorf("verb %s is not in the table", v)
		}
	}
}

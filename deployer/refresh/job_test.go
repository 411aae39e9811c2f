package refresh

import (
	"strings"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	// A Sunday in November (CET, UTC+1) and one in July (CEST, UTC+2).
	nov := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	jul := time.Date(2026, 7, 5, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		spec    string
		from    time.Time
		want    time.Time // next run after from; zero when spec is ""
		wantErr string    // after `services.ns.refresh.schedule: "<spec>" is not a cron schedule: `
	}{
		{name: "five fields, read in UTC", spec: "0 4 * * 1", from: nov, want: time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC)},
		{name: "five fields from a non-UTC time", spec: "0 4 * * 1", from: nov.In(time.FixedZone("EST", -5*3600)),
			want: time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC)},
		{name: "descriptor", spec: "@weekly", from: nov, want: time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)},
		{name: "descriptor daily", spec: "@daily", from: nov, want: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)},
		{name: "CRON_TZ=UTC", spec: "CRON_TZ=UTC 0 4 * * 1", from: nov, want: time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC)},
		{name: "CRON_TZ=Europe/Berlin in winter", spec: "CRON_TZ=Europe/Berlin 0 4 * * 1", from: nov,
			want: time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)},
		{name: "CRON_TZ=Europe/Berlin in summer", spec: "CRON_TZ=Europe/Berlin 0 4 * * 1", from: jul,
			want: time.Date(2026, 7, 6, 2, 0, 0, 0, time.UTC)},
		{name: "empty is no schedule", spec: ""},
		{name: "four fields", spec: "0 4 * *", wantErr: "expected exactly 5 fields, found 4: [0 4 * *]"},
		{name: "six fields", spec: "0 0 4 * * 1", wantErr: "expected exactly 5 fields, found 6"},
		{name: "hour out of range", spec: "0 25 * * 1", wantErr: "end of range (25) above maximum (23): 25"},
		{name: "not a number", spec: "0 four * * 1", wantErr: `failed to parse int from four`},
		{name: "unknown zone", spec: "CRON_TZ=Mars/Olympus 0 4 * * 1", wantErr: "provided bad location Mars/Olympus"},
		{name: "unknown descriptor", spec: "@fortnightly", wantErr: "unrecognized descriptor: @fortnightly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchedule("ns", tt.spec)
			if tt.wantErr != "" {
				prefix := `services.ns.refresh.schedule: "` + tt.spec + `" is not a cron schedule: `
				if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSchedule(%q) = %v\nwant %s…%s", tt.spec, err, prefix, tt.wantErr)
				}
				if err := (Job{Service: "ns", Schedule: tt.spec}).Validate(); err == nil || !strings.HasPrefix(err.Error(), prefix) {
					t.Errorf("Validate = %v, want the same error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSchedule(%q): %v", tt.spec, err)
			}
			if tt.spec == "" {
				if s != nil {
					t.Fatalf("ParseSchedule(\"\") = %v, want no schedule", s)
				}
				return
			}
			if got := next(s, tt.from); !got.Equal(tt.want) {
				t.Errorf("next after %s = %s, want %s", tt.from, got.UTC(), tt.want)
			}
		})
	}
}

func TestJobValidate(t *testing.T) {
	tests := []struct {
		name    string
		job     Job
		wantErr string
	}{
		{name: "complete", job: Job{Service: "ns", Schedule: "CRON_TZ=UTC 0 4 * * 1", Keep: 5, BaseImage: "linode/debian12"}},
		{name: "on demand only, defaults", job: Job{Service: "ns"}},
		{name: "no service", job: Job{Schedule: "@weekly"}, wantErr: "an image refresh has no service"},
		{name: "negative keep", job: Job{Service: "web", Keep: -1}, wantErr: "services.web.refresh.keep: -1 is negative"},
		{name: "bad schedule names the service", job: Job{Service: "web", Schedule: "0 4"},
			wantErr: `services.web.refresh.schedule: "0 4" is not a cron schedule: expected exactly 5 fields, found 2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.job.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want %s…", err, tt.wantErr)
			}
		})
	}
	if got := (Job{}).keep(); got != DefaultKeep {
		t.Errorf("keep of a zero job = %d, want %d", got, DefaultKeep)
	}
	_, err := New(Options{Jobs: []Job{{Service: "ns"}, {Service: "ns"}}, Baker: &fakeBaker{}, Images: &fakeBaker{},
		State: openDB(t, "", nil), Deploys: &fakeDeploys{}})
	if err == nil || err.Error() != "services.ns.refresh is configured twice" {
		t.Errorf("New with a service twice = %v", err)
	}
}

func TestNextBuildID(t *testing.T) {
	at := time.Date(2026, 11, 23, 5, 0, 0, 0, time.FixedZone("CET", 3600)) // 04:00 UTC
	tests := []struct{ last, want string }{
		{"", "20261123-0400"},
		{"20261116-0400", "20261123-0400"},
		{"20261123-0400", "20261123-0400-2"},
		{"20261123-0400-2", "20261123-0400-3"},
		{"20261123-0400-x", "20261123-0400"},
	}
	for _, tt := range tests {
		if got := nextBuildID(at, tt.last); got != tt.want {
			t.Errorf("nextBuildID after %q = %q, want %q", tt.last, got, tt.want)
		}
	}
}

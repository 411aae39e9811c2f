package refresh

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// golden returns golden image n, created n hours after t0: a higher n is newer.
func golden(n int) deployer.Image {
	return deployer.Image{ID: "private/" + string(rune('0'+n)), Label: "ns-golden-" + string(rune('0'+n)),
		Created: monday.Add(time.Duration(n) * time.Hour), Golden: true}
}

func TestSelectPrune(t *testing.T) {
	g1, g2, g3, g4, g5, g6 := golden(1), golden(2), golden(3), golden(4), golden(5), golden(6)
	manual := deployer.Image{ID: "private/manual", Label: "hand-made", Created: monday.Add(-time.Hour)}
	six := []deployer.Image{g6, g5, g4, g3, g2, g1, manual} // as a cloud lists them: newest first
	twin := deployer.Image{ID: "private/twin", Label: "ns-golden-twin", Created: g4.Created, Golden: true}
	tests := []struct {
		name   string
		images []deployer.Image
		keep   int
		inUse  []string
		want   []string
	}{
		{name: "fewer than keep", images: []deployer.Image{g2, g1, manual}, keep: 5, want: nil},
		{name: "exactly keep", images: six, keep: 6, want: nil},
		{name: "keep 5 of 6", images: six, keep: 5, want: []string{g1.ID}},
		{name: "keep 2 of 6", images: six, keep: 2, want: []string{g4.ID, g3.ID, g2.ID, g1.ID}},
		{name: "the live set's image is spared", images: six, keep: 2, inUse: []string{g2.ID},
			want: []string{g4.ID, g3.ID, g1.ID}},
		{name: "the rollback set's and a deploy in flight's images are spared", images: six, keep: 2,
			inUse: []string{g1.ID, g3.ID}, want: []string{g4.ID, g2.ID}},
		{name: "an image in use by label is spared", images: six, keep: 2, inUse: []string{g4.Label},
			want: []string{g3.ID, g2.ID, g1.ID}},
		{name: "an image in use among the newest counts towards keep", images: six, keep: 2, inUse: []string{g6.ID},
			want: []string{g4.ID, g3.ID, g2.ID, g1.ID}},
		{name: "every old image in use", images: six, keep: 3, inUse: []string{g1.ID, g2.ID, g3.ID, "private/gone"}, want: nil},
		{name: "images that are not golden are never pruned", images: []deployer.Image{g1, manual}, keep: 1, want: nil},
		{name: "keep 0 still keeps the newest", images: six, keep: 0, want: []string{g5.ID, g4.ID, g3.ID, g2.ID, g1.ID}},
		{name: "by creation time, not list order", images: []deployer.Image{g1, manual, g3, g6, g2, g4, g5}, keep: 3,
			want: []string{g3.ID, g2.ID, g1.ID}},
		{name: "equal times keep the list's order", images: []deployer.Image{g6, g5, g4, twin, g3}, keep: 3,
			want: []string{twin.ID, g3.ID}},
		{name: "no images", images: nil, keep: 5, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SelectPrune(slices.Clone(tt.images), tt.keep, tt.inUse)
			var gotIDs []string
			for _, im := range got {
				gotIDs = append(gotIDs, im.ID)
			}
			if !slices.Equal(gotIDs, tt.want) {
				t.Errorf("SelectPrune(keep %d, in use %q) = %q, want %q", tt.keep, tt.inUse, gotIDs, tt.want)
			}
		})
	}
}

// A bake prunes what SelectPrune picks; a delete that fails is reported
// and the others still go; when the deployer cannot say which images are
// in use, nothing is deleted. The bake succeeds either way.
func TestBakePrunes(t *testing.T) {
	old := []deployer.Image{golden(5), golden(4), golden(3), golden(2), golden(1)}
	tests := []struct {
		name        string
		inUse       []string
		inUseErr    error
		failDelete  map[string]error
		wantPruned  []string
		wantDeleted []string
		wantErr     string // in PruneErr
	}{
		{name: "old images deleted, the live one spared", inUse: []string{golden(1).ID},
			wantPruned: []string{golden(3).ID, golden(2).ID}, wantDeleted: []string{golden(3).ID, golden(2).ID}},
		{name: "a failed delete is reported", failDelete: map[string]error{golden(2).ID: errors.New("image is busy")},
			wantPruned: []string{golden(3).ID, golden(1).ID}, wantDeleted: []string{golden(3).ID, golden(1).ID},
			wantErr: "could not delete old image private/2 (ns-golden-2): image is busy"},
		{name: "in use unknown: nothing deleted", inUseErr: errors.New("store closed"),
			wantPruned: []string{}, wantDeleted: []string{},
			wantErr: "did not prune old images: cannot tell which images ns uses: store closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := deployer.NewManualClock(monday.Add(24 * time.Hour))
			baker := &fakeBaker{clock: clock, images: slices.Clone(old), failDelete: tt.failDelete}
			evs := newEvents()
			r, err := New(Options{
				Jobs:  []Job{{Service: "ns", Keep: 3}},
				Baker: baker, Images: baker, State: openDB(t, "", clock),
				Deploys:  &fakeDeploys{inUse: tt.inUse, inUseErr: tt.inUseErr},
				Reporter: evs, Clock: clock, Logger: discard(),
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.RunNow(context.Background(), "ns", "U1"); err != nil {
				t.Fatal(err)
			}
			evs.next(t, EventStarted)
			ev := evs.next(t, EventFinished)
			r.Wait()
			if got := ids(ev.Pruned); !slices.Equal(got, tt.wantPruned) {
				t.Errorf("Pruned = %q, want %q", got, tt.wantPruned)
			}
			if got := baker.deletedIDs(); !slices.Equal(append([]string{}, got...), tt.wantDeleted) {
				t.Errorf("deleted %q, want %q", got, tt.wantDeleted)
			}
			switch {
			case tt.wantErr == "" && ev.PruneErr != nil:
				t.Errorf("PruneErr = %v", ev.PruneErr)
			case tt.wantErr != "" && (ev.PruneErr == nil || !strings.Contains(ev.PruneErr.Error(), tt.wantErr)):
				t.Errorf("PruneErr = %v, want %q", ev.PruneErr, tt.wantErr)
			}
			if ev.Err != nil || ev.Image.ID != "private/101" {
				t.Errorf("the bake itself: image %q, err %v", ev.Image.ID, ev.Err)
			}
		})
	}
}

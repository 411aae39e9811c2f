package commands
import ("fmt";"testing";"os";"strings")
func TestScratch(t *testing.T){ svcs:=[]string{"ns","web"}; for _,a:=range strings.Split(os.Getenv("IN"),"|"){ c,err:=Parse(a,svcs); if err!=nil{fmt.Printf("%q\n  ERR %v\n",a,err)}else{fmt.Printf("%q\n  %+v\n  %s\n",a,c,c)}}}

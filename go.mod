module github.com/greenlight/greenlight

go 1.26

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/miekg/dns v1.1.73 // indirect
	github.com/slack-go/slack v0.35.0 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/net v0.57.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)

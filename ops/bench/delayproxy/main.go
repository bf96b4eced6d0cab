// delayproxy: a TCP proxy that delivers every byte `-delay` after it arrived, in both
// directions, to measure against a server as far away as a managed database (PlanetScale
// from a worker in the same region: a round trip of ~1-2 ms) on a machine where the server
// is on loopback. Bandwidth is not limited; only latency is added.
//
//	go run ./ops/bench/delayproxy -listen 127.0.0.1:3307 -upstream 127.0.0.1:3306 -delay 500us
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"time"
)

type chunk struct {
	due  time.Time
	data []byte
}

// pipe copies src to dst, each read held back until `delay` after it arrived.
func pipe(dst, src net.Conn, delay time.Duration) {
	queue := make(chan chunk, 4096)
	go func() {
		defer dst.Close()
		for c := range queue {
			if wait := time.Until(c.due); wait > 0 {
				time.Sleep(wait)
			}
			if _, err := dst.Write(c.data); err != nil {
				return
			}
		}
	}()
	defer close(queue)
	buf := make([]byte, 256*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			data := make([]byte, n)
			copy(data, buf[:n])
			queue <- chunk{time.Now().Add(delay), data}
		}
		if err != nil {
			if err != io.EOF {
				log.Printf("read: %v", err)
			}
			return
		}
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "127.0.0.1:3306", "server to forward to")
	delay := flag.Duration("delay", time.Millisecond, "one-way delay added to every byte")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	// The port, for the caller that asked for port 0.
	println(ln.Addr().String())
	for {
		client, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			server, err := net.Dial("tcp", *upstream)
			if err != nil {
				log.Printf("dial: %v", err)
				client.Close()
				return
			}
			go pipe(server, client, *delay)
			pipe(client, server, *delay)
		}()
	}
}

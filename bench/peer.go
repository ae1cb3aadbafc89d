package bench

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
)

// peerTarget drives a Tako node over its binary peer protocol, one
// connection per worker and one request at a time, like the HTTP and RESP
// targets: the protocol-level comparison with Redis.
type peerTarget struct {
	c       *eventloop.Client
	timeout time.Duration
}

// dialPeer connects to addr; with secretFile, proving that cluster secret in the
// handshake as every member does; with tlsCfg, under TLS.
func dialPeer(addr, secretFile string, tlsCfg *tls.Config, timeout time.Duration) (Target, error) {
	var secrets [][]byte
	if secretFile != "" {
		s, err := eventloop.ReadSecretFile(secretFile)
		if err != nil {
			return nil, err
		}
		secrets = [][]byte{s}
	}
	c := eventloop.NewClient(eventloop.ClientConfig{Addr: addr, Conns: 1, Secrets: secrets, TLS: tlsCfg})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return &peerTarget{c: c, timeout: timeout}, nil
}

func (p *peerTarget) Get(key, dst []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	resp, err := p.c.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer resp.Release()
	if resp.Status != codec.StatusOK || resp.Flags&codec.Tombstone != 0 {
		return nil, ErrNotFound
	}
	return append(dst[:0], resp.Value...), nil
}

func (p *peerTarget) Set(key, value []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	_, err := p.c.Set(ctx, key, time.Now().UnixMicro(), 0, value)
	return err
}

func (p *peerTarget) Close() error { return p.c.Close() }

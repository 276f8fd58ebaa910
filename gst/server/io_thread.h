// An I/O thread of websocketsink: one epoll loop, a core::Broadcaster and the sockets of its
// viewers. The streaming thread posts every init/fragment to each thread's inbox (an eventfd
// wakes it; bounded: fragments not taken in time are dropped and replaced by a gap); the
// server thread hands each new viewer (after its handshake) to the least loaded thread. The
// thread writes each viewer's queue without copying payloads (a frame header or rewritten
// moof, then the shared payload, with writev), reads and decodes the viewers' frames
// (ws_frame.h), runs close deadlines and keepalive, and closes everyone with 1001 on Stop().
//
// No GLib/GStreamer types: a viewer's socket is a plain fd behind a Transport (FdTransport
// here; the glue wraps libsoup's stolen GIOStream, TLS included, in its own Transport).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "broadcaster.h"
#include "ws_frame.h"

struct iovec;

namespace fmp4ws::server {

// A viewer's byte stream, used only by its I/O thread. Non-blocking.
class Transport
{
public:
  virtual ~Transport () = default;
  // > 0: bytes read; 0: end of stream; kWouldBlock; kFailed (*error says why).
  virtual long Read (uint8_t *buf, size_t size, std::string *error) = 0;
  // >= 0: bytes written; kWouldBlock; kFailed (*error says why).
  virtual long Writev (const struct iovec *vec, int n, std::string *error) = 0;
  // The connection leaves its thread: close (may finish asynchronously elsewhere).
  virtual void Close () = 0;
  // Reads per wakeup (a TLS stream may hold decrypted bytes its fd no longer signals).
  virtual int max_read_rounds () const { return 16; }
  static constexpr long kWouldBlock = -1;
  static constexpr long kFailed = -2;
};

// A plain socket the transport owns: recv() / sendmsg(), close() at the end.
class FdTransport : public Transport
{
public:
  explicit FdTransport (int fd) : fd_ (fd) {}
  ~FdTransport () override { Close (); }
  long Read (uint8_t *buf, size_t size, std::string *error) override;
  long Writev (const struct iovec *vec, int n, std::string *error) override;
  void Close () override;
  // sendmsg(MSG_NOSIGNAL|MSG_DONTWAIT) of `vec` on a plain socket: bytes taken, kWouldBlock
  // or kFailed (with `error`). Also the plain-socket path of libsoup-made transports.
  static long WritevFd (int fd, const struct iovec *vec, int n, std::string *error);

private:
  int fd_;
};

// Counters of an I/O thread (or of a whole sink).
struct Totals
{
  uint64_t bytes_sent = 0, fragments_sent = 0, fragments_dropped = 0, connections = 0;
  uint64_t skips = 0;  // backlog overflows (core::ViewerStats::skips) of all viewers
  std::map<std::string, uint64_t> disconnects;  // by reason
  void Add (const Totals &o);
};

struct ClientSnapshot
{
  uint64_t id = 0;
  std::string address;
  bool websocket = true;
  core::ViewerStats stats;
  uint64_t backlog_bytes = 0;
  int64_t backlog_ns = 0;
};

struct Snapshot
{
  Totals totals;  // viewers gone and connected
  size_t viewers = 0;
  uint64_t overload_drops = 0;
  size_t gop_fragments = 0;
  uint64_t gop_bytes = 0;
  std::vector<ClientSnapshot> clients;
};

class IoThread
{
public:
  struct Settings
  {
    core::BroadcastConfig config;
    unsigned keepalive = 10;             // keepalive interval in ticks (0: off)
    int64_t tick_us = 1000000;           // a tick (the sink: 1 s)
    size_t max_message_size = 4096;      // largest viewer message (1009 above)
    // Most frames a viewer may send per second, control frames (ping, pong, close) and
    // messages alike; past it: close 1008 "too many messages" (0: no limit). The player sends
    // one report a second; a flood of pings is bounded in memory anyway (one pong pending).
    unsigned max_message_rate = 100;
    int64_t close_timeout_us = 2000000;  // a closing viewer that never takes its close frame
    int64_t stop_grace_us = 200000;      // Stop(): how long viewers may take their 1001
  };
  enum class LogLevel { kError, kWarning, kInfo, kDebug };
  // Called on the I/O thread with no lock held (added/removed) or any (log, released).
  struct Callbacks
  {
    std::function<void (uint64_t id, const std::string &address)> client_added;
    std::function<void (uint64_t id, const std::string &address, const std::string &reason)>
        client_removed;
    std::function<void ()> connection_released;  // any connection handed over left
    // A viewer waits for the next keyframe fragment (Broadcaster::Event::kNeedKeyframe): the
    // sink may ask upstream for one (force-key-unit); called at most once per batch of events.
    std::function<void ()> need_keyframe;
    std::function<void (LogLevel, const std::string &)> log;
    // Whether `log` wants a level (asked each time: messages it does not want are not even
    // formatted); unset: every level.
    std::function<bool (LogLevel)> log_enabled;
  };

  // Starts the thread ("wssink-io<index>"); nullptr and *error if it could not.
  static std::unique_ptr<IoThread> Start (unsigned index, const Settings &settings,
                                          Callbacks callbacks, std::string *error);
  // Closes every viewer (1001, within stop_grace_us), ends the thread.
  ~IoThread ();

  unsigned index () const { return index_; }
  // Viewers, including those being handed over.
  unsigned load () const { return load_; }

  // Streaming thread (any thread).
  void PostInit (core::ItemPtr item);
  // Fragments the thread has not taken yet are dropped (a gap) past `max_inbox_bytes`
  // (0: no bound) or kMaxInboxFragments.
  void PostFragment (core::ItemPtr item, uint64_t max_inbox_bytes);
  void PostEos ();
  void PostReset ();
  void PostSettings (const Settings &settings);

  // Server thread (any thread): a new viewer, its handshake done. Takes the transport.
  void AddConnection (uint64_t id, int fd, std::unique_ptr<Transport> transport,
                      const std::string &address, const core::Broadcaster::ViewerOptions &options);

  // Any thread.
  void Snap (Snapshot *out, bool with_clients) const;
  uint64_t overload_drops () const { return overload_drops_; }

  static constexpr size_t kMaxInboxFragments = 4096;

  struct Connection;

private:
  struct Command
  {
    enum Kind { kInit, kFragment, kEos, kReset, kSettings, kAdd, kStop, kGap } kind;
    Command (Kind k, core::ItemPtr i = nullptr) : kind (k), item (std::move (i)) {}
    core::ItemPtr item;
    Connection *conn = nullptr;  // kAdd
    uint64_t lost = 0;           // kGap: fragments dropped before this thread took them
    std::shared_ptr<const Settings> settings;  // kSettings
  };
  struct PendingSignal
  {
    bool added;
    uint64_t id;
    std::string address, reason;
  };

  IoThread () = default;
  void Post (Command cmd, uint64_t max_bytes = 0);
  void Run ();
  bool DrainInbox ();
  void ApplySettings (const Settings &s);
  void AddConn (Connection *c);
  void Release (Connection *c);
  void Finish (Connection *c, const std::string &reason);
  void Flush (Connection *c);
  void SetWriteInterest (Connection *c, bool want);
  void CloseViewer (Connection *c, uint16_t code, const std::string &reason);
  void ProcessEvents ();
  void OnReadable (Connection *c);
  void HandleFrames (Connection *c, const uint8_t *data, size_t size);
  void HandleText (Connection *c, const std::string &text);
  void RunTimers ();
  int TimeoutMs () const;
  void ClearWake ();
  void Shutdown ();
  void EmitSignals ();
  bool LogOn (LogLevel l) const { return cb_.log && (!cb_.log_enabled || cb_.log_enabled (l)); }
  void Log (LogLevel l, const std::string &msg) const;

  unsigned index_ = 0;
  int epfd_ = -1, evfd_ = -1;
  std::thread thread_;
  Callbacks cb_;

  // The thread's state; other threads read it under lock_.
  mutable std::mutex lock_;
  core::Broadcaster bc_;
  std::unordered_map<uint64_t, Connection *> conns_;
  Totals totals_;
  std::vector<uint64_t> closing_;  // connections with a close deadline
  std::vector<PendingSignal> signals_;  // emitted once lock_ is released
  Settings settings_;
  bool stopping_ = false;  // closing everyone: no more reads
  int64_t next_tick_us_ = 0;
  uint64_t tick_ = 0;

  // Other threads -> this thread.
  std::mutex inbox_mutex_;
  std::vector<Command> inbox_;
  bool wake_pending_ = false;
  uint64_t inbox_bytes_ = 0;  // payload bytes of the fragments in the inbox
  size_t inbox_fragments_ = 0;
  std::atomic<uint64_t> overload_drops_{0};
  std::atomic<unsigned> load_{0};
};

}  // namespace fmp4ws::server

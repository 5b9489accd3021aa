#include "daemon/event_queue.h"

#include <fcntl.h>
#include <kj/debug.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "base/sys_error.h"
#include "supervisor/messages.h"

namespace thatchd {

namespace {

supervisor::StderrTaskErrors queueErrors("event queue");

constexpr const char kSuffix[] = ".event";
constexpr const char kPartialSuffix[] = ".event.tmp";
constexpr size_t kSequenceDigits = 20;  // every uint64_t, zero-padded: names sort as numbers
constexpr size_t kMaxNameBytes = 1024;  // function and request id: bounds a header's read
constexpr size_t kFilesAtOnce = 64;     // open at once while a batch is written
constexpr size_t kSyncThreads = 16;     // fdatasync at once
constexpr std::chrono::milliseconds kMaxRetryDelay = std::chrono::minutes(5);

// ---- The file: header, function, request id, payload ----------------------
//
//   0  magic "THQEVT01" (the 01: the format's version)
//   8  u32 CRC-32C of bytes 16..48, the function and the request id
//  12  u32 CRC-32C of the payload
//  16  i64 accepted, ms since the epoch (wall clock: ages survive a restart)
//  24  u64 version
//  32  u64 payload bytes
//  40  u32 function bytes
//  44  u32 request id bytes
// Integers little-endian.
constexpr char kMagic[8] = {'T', 'H', 'Q', 'E', 'V', 'T', '0', '1'};
constexpr size_t kHeaderBytes = 48;

// CRC-32C (Castagnoli), eight bytes a step: a 256 KiB payload costs ~0.15 ms
// (measured, -O2) when it is read back on the loop.
struct CrcTables {
  uint32_t t[8][256];
};

constexpr CrcTables makeCrcTables() {
  CrcTables tables{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
    tables.t[0][i] = crc;
  }
  for (int k = 1; k < 8; ++k)
    for (uint32_t i = 0; i < 256; ++i)
      tables.t[k][i] = (tables.t[k - 1][i] >> 8) ^ tables.t[0][tables.t[k - 1][i] & 0xff];
  return tables;
}

constexpr CrcTables kCrc = makeCrcTables();

static_assert(std::endian::native == std::endian::little, "crc32c() reads words little-endian");

uint32_t crc32c(std::string_view bytes, uint32_t crc = 0) {
  crc = ~crc;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    word ^= crc;
    crc = kCrc.t[7][word & 0xff] ^ kCrc.t[6][(word >> 8) & 0xff] ^ kCrc.t[5][(word >> 16) & 0xff] ^
          kCrc.t[4][(word >> 24) & 0xff] ^ kCrc.t[3][(word >> 32) & 0xff] ^
          kCrc.t[2][(word >> 40) & 0xff] ^ kCrc.t[1][(word >> 48) & 0xff] ^ kCrc.t[0][word >> 56];
  }
  for (; n > 0; ++p, --n) crc = kCrc.t[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
  return ~crc;
}

void putLe(std::string& out, size_t at, uint64_t value, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) out[at + i] = char(value >> (8 * i));
}

uint64_t getLe(std::string_view in, size_t at, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes; ++i) value |= uint64_t(uint8_t(in[at + i])) << (8 * i);
  return value;
}

// The header, the function and the request id: all of a file but its payload.
std::string encodeHead(const EventQueue::Event& event, int64_t acceptedUnixMs) {
  std::string head(kHeaderBytes, '\0');
  memcpy(head.data(), kMagic, sizeof kMagic);
  putLe(head, 16, uint64_t(acceptedUnixMs), 8);
  putLe(head, 24, event.version, 8);
  putLe(head, 32, event.payload.size(), 8);
  putLe(head, 40, event.function.size(), 4);
  putLe(head, 44, event.requestId.size(), 4);
  head += event.function;
  head += event.requestId;
  putLe(head, 8, crc32c(std::string_view(head).substr(16)), 4);
  putLe(head, 12, crc32c(event.payload), 4);
  return head;
}

// Reads at most buffer.size() bytes at `offset`; fewer only at the end of the file.
size_t readAt(int fd, std::string& buffer, uint64_t offset, const std::string& name) {
  size_t done = 0;
  while (done < buffer.size()) {
    ssize_t n = pread(fd, buffer.data() + done, buffer.size() - done, off_t(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) base::throwSysError("read " + name);
    if (n == 0) break;
    done += size_t(n);
  }
  return done;
}

// What an event file holds, or why it cannot be trusted (`damage`).
struct FileContents {
  EventQueue::Event event;
  int64_t acceptedUnixMs = 0;
  std::string damage;
};

FileContents damaged(std::string why) {
  FileContents file;
  file.damage = std::move(why);
  return file;
}

// Every read is bounded by the header, two names of kMaxNameBytes and
// `maxPayloadBytes`, whatever the file claims. Throws SysError for a
// failure of the host (the file is then not known to be damaged).
FileContents readEventFile(int dirFd, const std::string& name, uint64_t maxPayloadBytes,
                           bool withPayload) {
  base::Fd fd(openat(dirFd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) base::throwSysError("open " + name);
  struct stat st;
  base::check(fstat(fd.get(), &st), "fstat " + name);
  uint64_t size = uint64_t(st.st_size);
  std::string head(kHeaderBytes, '\0');
  if (readAt(fd.get(), head, 0, name) < kHeaderBytes)
    return damaged("it is " + std::to_string(size) + " bytes, shorter than a header");
  if (memcmp(head.data(), kMagic, sizeof kMagic) != 0)
    return damaged("it does not begin as an event file does");
  uint64_t functionBytes = getLe(head, 40, 4), requestIdBytes = getLe(head, 44, 4);
  if (functionBytes > kMaxNameBytes || requestIdBytes > kMaxNameBytes)
    return damaged("its header is damaged (names' sizes)");
  std::string names(functionBytes + requestIdBytes, '\0');
  if (readAt(fd.get(), names, kHeaderBytes, name) < names.size())
    return damaged("it is " + std::to_string(size) + " bytes, shorter than its header says");
  if (crc32c(names, crc32c(std::string_view(head).substr(16))) != getLe(head, 8, 4))
    return damaged("its header is damaged (checksum)");
  uint64_t payloadBytes = getLe(head, 32, 8);
  if (payloadBytes > maxPayloadBytes)
    return damaged("its payload of " + std::to_string(payloadBytes) +
                   " bytes is over this thatchd's limit of " + std::to_string(maxPayloadBytes));
  uint64_t expected = kHeaderBytes + names.size() + payloadBytes;
  if (size != expected)
    return damaged("it is " + std::to_string(size) + " bytes where its header says " +
                   std::to_string(expected) + " (truncated?)");
  FileContents file;
  EventQueue::Event& event = file.event;
  event.function = names.substr(0, functionBytes);
  event.requestId = names.substr(functionBytes);
  event.version = getLe(head, 24, 8);
  file.acceptedUnixMs = int64_t(getLe(head, 16, 8));
  if (!withPayload) return file;
  event.payload.assign(payloadBytes, '\0');
  if (readAt(fd.get(), event.payload, expected - payloadBytes, name) < payloadBytes)
    return damaged("it shrank while it was read");
  if (crc32c(event.payload) != getLe(head, 12, 4))
    return damaged("its payload is damaged (checksum)");
  return file;
}

std::string sequenceName(uint64_t seq, const char* suffix) {
  std::string digits = std::to_string(seq);
  return std::string(kSequenceDigits - digits.size(), '0') + digits + suffix;
}

std::string fileName(uint64_t seq) {
  return sequenceName(seq, kSuffix);
}
std::string partialName(uint64_t seq) {
  return sequenceName(seq, kPartialSuffix);
}

// The sequence of a name `fileName()` (or `partialName()`) made.
std::optional<uint64_t> sequenceIn(std::string_view name, std::string_view suffix) {
  if (name.size() != kSequenceDigits + suffix.size() || !name.ends_with(suffix))
    return std::nullopt;
  uint64_t seq = 0;
  const char* end = name.data() + kSequenceDigits;
  auto [stop, error] = std::from_chars(name.data(), end, seq);
  if (error != std::errc() || stop != end) return std::nullopt;
  return seq;
}

int64_t wallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

kj::Duration toKj(std::chrono::milliseconds ms) {
  return ms.count() * kj::MILLISECONDS;
}

// retryDelay·2^(nth-1), at most kMaxRetryDelay.
std::chrono::milliseconds nthRetryDelay(std::chrono::milliseconds first, unsigned nth) {
  std::chrono::milliseconds delay = std::min(first, kMaxRetryDelay);
  for (unsigned i = 1; i < nth && delay < kMaxRetryDelay; ++i)
    delay = std::min(delay * 2, kMaxRetryDelay);
  return delay;
}

// What comes after an invocation that ended with `status`.
enum class Next {
  kDone,   // remove it
  kDrop,   // retrying cannot help: remove it, log it
  kDefer,  // thatchd could not take it now: again later, no attempt counted
  kRetry,  // a failed attempt
};

Next nextAfter(thatch::Status status) {
  using thatch::Status;
  switch (status) {
    case Status::kOk:
      return Next::kDone;
    case Status::kNotFound:
    case Status::kBadRequest:
      return Next::kDrop;
    case Status::kOverloaded:
    case Status::kShuttingDown:
      return Next::kDefer;
    case Status::kHandlerError:
    case Status::kTimeout:
    case Status::kOutOfMemory:
    case Status::kTooManyProcesses:
    case Status::kResultTooLarge:
    case Status::kCrashed:
    case Status::kStartFailed:
      return Next::kRetry;
  }
  return Next::kRetry;  // not a Status
}

std::string hostFailure(const base::SysError& e) {
  std::string message = "thatchd could not store the event";
  if (e.error() == ENOSPC || e.error() == EDQUOT) message += ": the disk is full";
  return message + " (" + e.what() + ")";
}

}  // namespace

// ---- The threads ------------------------------------------------------------

struct EventQueue::Store {
  uint64_t seq = 0;
  Event event;  // its payload is freed once written
  int64_t acceptedUnixMs = 0;
  std::string error;  // when done: "" if durable, else why not
};

// Writes and fsyncs event files on a thread of its own, and removes done
// ones on another (an unlink waits for the journal too: ~1 ms on a busy
// disk, not to be paid between two batches). Stores that arrive while a
// batch is written go together into the next one (group commit): one
// directory fsync for them all, their fdatasyncs at once.
class EventQueue::Writer {
 public:
  struct Done {
    std::vector<Store> stores;
    std::vector<std::string> removalErrors;
  };

  Writer(int dirFd, std::string dir) : dirFd_(dirFd), dir_(std::move(dir)) {
    int fds[2];
    base::check(pipe2(fds, O_CLOEXEC | O_NONBLOCK), "pipe2");
    signalRead_ = base::Fd(fds[0]);
    signalWrite_ = base::Fd(fds[1]);
    storer_ = std::thread([this]() { storeUntilStopped(); });
    try {
      remover_ = std::thread([this]() { removeUntilStopped(); });
    } catch (...) {
      stop();
      throw;
    }
  }
  ~Writer() { stop(); }

  int signalFd() const { return signalRead_.get(); }

  void store(Store store) {
    std::lock_guard<std::mutex> lock(mutex_);
    toStore_.push_back(std::move(store));
    storeWanted_.notify_one();
  }

  void remove(uint64_t seq) {
    std::lock_guard<std::mutex> lock(mutex_);
    toRemove_.push_back(seq);
    removeWanted_.notify_one();
  }

  // On the loop: what the threads finished since the last call.
  Done takeDone() {
    char bytes[64];
    for (;;) {
      ssize_t n = read(signalRead_.get(), bytes, sizeof bytes);
      if (n <= 0 && !(n < 0 && errno == EINTR)) break;  // EAGAIN: emptied
    }
    std::lock_guard<std::mutex> lock(mutex_);
    return std::exchange(done_, {});
  }

  // Finishes the batch under way and every removal asked for, and joins;
  // returns the stores never begun.
  std::vector<Store> stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      storeWanted_.notify_one();
      removeWanted_.notify_one();
    }
    if (storer_.joinable()) storer_.join();
    if (remover_.joinable()) remover_.join();
    return std::exchange(toStore_, {});
  }

 private:
  void storeUntilStopped() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      storeWanted_.wait(lock, [this]() { return stopping_ || !toStore_.empty(); });
      if (stopping_) return;
      std::vector<Store> batch = std::exchange(toStore_, {});
      lock.unlock();
      storeBatch(batch);
      lock.lock();
      for (Store& store : batch) done_.stores.push_back(std::move(store));
      signal();
    }
  }

  void removeUntilStopped() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      removeWanted_.wait(lock, [this]() { return stopping_ || !toRemove_.empty(); });
      if (toRemove_.empty()) return;  // stopping, and nothing left
      std::vector<uint64_t> seqs = std::exchange(toRemove_, {});
      lock.unlock();
      std::vector<std::string> errors;
      for (uint64_t seq : seqs) {
        std::string name = fileName(seq);
        // Not fsync'd: lost in a crash, the event runs again (at least once).
        if (unlinkat(dirFd_, name.c_str(), 0) < 0 && errno != ENOENT)
          errors.push_back(base::SysError("unlink " + path(name), errno).what());
      }
      lock.lock();
      if (errors.empty()) continue;
      for (std::string& error : errors) done_.removalErrors.push_back(std::move(error));
      signal();
    }
  }

  // With mutex_ held.
  void signal() {
    char done = 1;
    while (write(signalWrite_.get(), &done, 1) < 0 && errno == EINTR) {
    }  // EAGAIN: the pipe holds bytes the loop has yet to read, enough to wake it
  }

  // Each step of each store throws SysError, recorded as its error (and
  // what it left removed).
  void storeBatch(std::vector<Store>& batch) {
    std::vector<Store*> renamed;
    for (size_t first = 0; first < batch.size(); first += kFilesAtOnce) {
      size_t end = std::min(batch.size(), first + kFilesAtOnce);
      std::vector<base::Fd> files(end - first);
      for (size_t i = first; i < end; ++i)
        attempt(batch[i], [&]() { files[i - first] = writePartial(batch[i]); });
      std::vector<int> errors = dataSyncAll(files);
      for (size_t i = first; i < end; ++i) {
        if (!files[i - first]) continue;
        files[i - first].reset();
        attempt(batch[i], [&]() {
          std::string partial = partialName(batch[i].seq);
          if (errors[i - first] != 0)
            base::throwSysError("fdatasync " + path(partial), errors[i - first]);
          base::check(renameat(dirFd_, partial.c_str(), dirFd_, fileName(batch[i].seq).c_str()),
                      "rename " + path(partial));
          renamed.push_back(&batch[i]);
        });
      }
    }
    if (!renamed.empty() && fsync(dirFd_) < 0) {
      base::SysError error("fsync " + dir_, errno);
      for (Store* store : renamed) {
        store->error = hostFailure(error);
        unlinkat(dirFd_, fileName(store->seq).c_str(), 0);  // refused: better it never ran
      }
    }
    for (Store& store : batch) store.event.payload = std::string();  // freed here
  }

  // fdatasync of each open one of `files` from threads at once, its errno
  // (or 0) at the same index. The journal then commits them together:
  // measured on ext4 under load, 16 files in ~15 ms, ~65 ms one by one.
  static std::vector<int> dataSyncAll(const std::vector<base::Fd>& files) {
    std::vector<int> errors(files.size(), 0);
    std::atomic<size_t> next{0};
    auto sync = [&]() {
      for (size_t i; (i = next++) < files.size();)
        if (files[i] && fdatasync(files[i].get()) < 0) errors[i] = errno;
    };
    std::vector<std::thread> helpers;
    for (size_t i = 1; i < std::min(files.size(), kSyncThreads); ++i) {
      try {
        helpers.emplace_back(sync);
      } catch (const std::system_error&) {
        break;  // no thread to spare: fewer at once
      }
    }
    sync();
    for (std::thread& helper : helpers) helper.join();
    return errors;
  }

  template <typename Step>
  void attempt(Store& store, Step step) {
    try {
      step();
    } catch (const base::SysError& e) {
      store.error = hostFailure(e);
      unlinkat(dirFd_, partialName(store.seq).c_str(), 0);
    }
  }

  // The file under its partial name, written, not yet synced.
  base::Fd writePartial(const Store& store) {
    std::string name = partialName(store.seq);
    base::Fd fd(openat(dirFd_, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) base::throwSysError("open " + path(name));
    writeAll(fd.get(), encodeHead(store.event, store.acceptedUnixMs), name);
    writeAll(fd.get(), store.event.payload, name);
    return fd;
  }

  void writeAll(int fd, std::string_view bytes, const std::string& name) {
    while (!bytes.empty()) {
      ssize_t n = write(fd, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) base::throwSysError("write " + path(name));
      bytes.remove_prefix(size_t(n));
    }
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  int dirFd_;  // the queue's
  std::string dir_;
  base::Fd signalRead_, signalWrite_;
  std::mutex mutex_;
  std::condition_variable storeWanted_, removeWanted_;
  std::vector<Store> toStore_;
  std::vector<uint64_t> toRemove_;
  Done done_;
  bool stopping_ = false;
  std::thread storer_, remover_;
};

// ---- The queue, on the loop ---------------------------------------------------

EventQueue::EventQueue(std::string dir, kj::UnixEventPort& eventPort, kj::Timer& timer,
                       Invoke invoke, Limits limits, supervisor::EventLog log)
    : dir_(std::move(dir)),
      eventPort_(eventPort),
      timer_(timer),
      invoke_(std::move(invoke)),
      limits_(limits),
      log_(std::move(log)),
      tasks_(kj::heap<kj::TaskSet>(queueErrors)) {
  openDirectory();
  load();
  writer_ = std::make_unique<Writer>(dirFd_.get(), dir_);
  writerObserver_ = kj::heap<kj::UnixEventPort::FdObserver>(
      eventPort_, writer_->signalFd(), kj::UnixEventPort::FdObserver::OBSERVE_READ);
  tasks_->add(watchWriter());
  tasks_->add(kj::evalLater([this]() { dispatch(); }));  // not from within the constructor
}

EventQueue::~EventQueue() {
  tasks_ = nullptr;
  writerObserver_ = nullptr;
  std::vector<Store> unwritten = writer_->stop();
  Writer::Done done = writer_->takeDone();
  for (Store& store : done.stores) stored(store);
  for (Store& store : unwritten)
    entries_.at(store.seq).stored->reject(supervisor::failure(
        kj::Exception::Type::DISCONNECTED, "thatchd stopped before the event was stored"));
}

void EventQueue::openDirectory() {
  if (mkdir(dir_.c_str(), 0700) == 0) {
    // Its name durable in its parent, or a crash could take it with every event in it. Once, at
    // the first start.
    std::string parent = std::filesystem::path(dir_).parent_path().string();
    base::Fd parentFd(
        open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parentFd || fsync(parentFd.get()) < 0) base::throwSysError("fsync " + parent);
  } else if (errno != EEXIST) {
    base::throwSysError("mkdir " + dir_);
  }
  dirFd_ = base::Fd(open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dirFd_) base::throwSysError("open " + dir_);
  if (flock(dirFd_.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK)
      throw std::runtime_error(dir_ + " holds the event queue of another thatchd (flock)");
    base::throwSysError("flock " + dir_);
  }
}

void EventQueue::load() {
  std::vector<std::string> names;
  for (const auto& item : std::filesystem::directory_iterator(dir_))
    names.push_back(item.path().filename());
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    std::string path = dir_ + "/" + name;
    if (auto seq = sequenceIn(name, kPartialSuffix)) {
      nextSeq_ = std::max(nextSeq_, *seq + 1);
      if (unlinkat(dirFd_.get(), name.c_str(), 0) < 0) base::throwSysError("unlink " + path);
      log_.write("async_event_partial_removed", {{"file", path}});
    } else if (auto seq = sequenceIn(name, kSuffix)) {
      nextSeq_ = std::max(nextSeq_, *seq + 1);
      loadEvent(*seq);
    } else {
      log_.write("async_event_stray_file", {{"file", path}});
    }
  }
}

void EventQueue::loadEvent(uint64_t seq) {
  std::string path = dir_ + "/" + fileName(seq);
  FileContents file;
  try {
    file = readEventFile(dirFd_.get(), fileName(seq), limits_.maxPayloadBytes, false);
  } catch (const base::SysError& e) {
    // Left for the next start: the file may be sound, the host is not.
    log_.write("async_event_unreadable", {{"file", path}, {"error", e.what()}});
    return;
  }
  if (!file.damage.empty()) {
    log_.write("async_event_damaged", {{"file", path}, {"error", file.damage}});
    if (unlinkat(dirFd_.get(), fileName(seq).c_str(), 0) < 0) base::throwSysError("unlink " + path);
    return;
  }
  Entry entry;
  entry.state = State::kReady;
  entry.function = std::move(file.event.function);
  entry.version = file.event.version;
  entry.requestId = std::move(file.event.requestId);
  // Its age so far, on the loop's clock; at most what drops it (a wall clock
  // set wrong cannot make it negative, nor overflow).
  int64_t maxAgeMs = std::chrono::milliseconds(limits_.maxAge).count() + 1;
  int64_t ageMs = std::clamp<int64_t>(wallNowMs() - file.acceptedUnixMs, 0, maxAgeMs);
  entry.acceptedAt = timer_.now() - ageMs * kj::MILLISECONDS;
  entries_.emplace(seq, std::move(entry));
  ready_.insert(seq);
}

kj::Promise<void> EventQueue::enqueue(Event event) {
  using Type = kj::Exception::Type;
  if (event.payload.size() > limits_.maxPayloadBytes)
    return supervisor::failure(Type::FAILED,
                               "the payload is " + std::to_string(event.payload.size()) +
                                   " bytes: an asynchronous invocation takes at most " +
                                   std::to_string(limits_.maxPayloadBytes));
  if (event.function.size() > kMaxNameBytes || event.requestId.size() > kMaxNameBytes)
    return supervisor::failure(Type::FAILED, "the function's name or the request id is over " +
                                                 std::to_string(kMaxNameBytes) + " bytes");
  if (entries_.size() >= limits_.maxEvents)
    return supervisor::failure(Type::OVERLOADED,
                               "the queue of asynchronous invocations is full (" +
                                   std::to_string(entries_.size()) +
                                   " events, its limit): try again once some have run");
  if (unstoredBytes_ > 0 && unstoredBytes_ + event.payload.size() > limits_.maxUnstoredBytes)
    return supervisor::failure(Type::OVERLOADED,
                               "the disk is behind: " + std::to_string(unstoredBytes_) +
                                   " bytes of asynchronous invocations wait to be written");
  uint64_t seq = nextSeq_++;
  auto answer = kj::newPromiseAndFulfiller<void>();
  Entry entry;
  entry.function = event.function;
  entry.version = event.version;
  entry.requestId = event.requestId;
  entry.payloadBytes = event.payload.size();
  entry.acceptedAt = timer_.now();
  entry.stored = kj::mv(answer.fulfiller);
  entries_.emplace(seq, std::move(entry));
  ++storing_;
  unstoredBytes_ += event.payload.size();
  writer_->store({seq, std::move(event), wallNowMs(), {}});
  return kj::mv(answer.promise);
}

kj::Promise<void> EventQueue::watchWriter() {
  return writerObserver_->whenBecomesReadable().then([this]() {
    writerDone();
    return watchWriter();
  });
}

void EventQueue::writerDone() {
  Writer::Done done = writer_->takeDone();
  for (const std::string& error : done.removalErrors)
    log_.write("async_event_remove_failed", {{"error", error}});
  for (Store& store : done.stores) stored(store);
  dispatch();
}

void EventQueue::stored(Store& store) {
  auto it = entries_.find(store.seq);
  KJ_ASSERT(it != entries_.end() && it->second.state == State::kStoring);
  Entry& entry = it->second;
  --storing_;
  unstoredBytes_ -= entry.payloadBytes;
  if (!store.error.empty()) {
    entry.stored->reject(supervisor::failure(kj::Exception::Type::FAILED, store.error));
    entries_.erase(it);
    return;
  }
  entry.stored->fulfill();
  entry.stored = nullptr;
  entry.state = State::kReady;
  ready_.insert(store.seq);
}

void EventQueue::dispatch() {
  while (running_ < limits_.concurrency && !ready_.empty()) {
    uint64_t seq = *ready_.begin();
    ready_.erase(ready_.begin());
    Entry& entry = entries_.at(seq);
    KJ_ASSERT(entry.state == State::kReady);
    if (age(entry) > toKj(limits_.maxAge)) {
      logDropped(entry, "max_age");
      forget(seq, false);
      continue;
    }
    std::string path = dir_ + "/" + fileName(seq);
    FileContents file;
    try {
      file = readEventFile(dirFd_.get(), fileName(seq), limits_.maxPayloadBytes, true);
    } catch (const base::SysError& e) {
      log_.write("async_event_unreadable", {{"file", path}, {"error", e.what()}});
      if (e.error() == ENOENT) {
        forget(seq, false);  // removed behind thatchd's back
      } else {
        retryLater(seq, ++entry.deferrals);
      }
      continue;
    }
    if (!file.damage.empty()) {
      log_.write("async_event_damaged", {{"file", path}, {"error", file.damage}});
      forget(seq, false);
      continue;
    }
    start(seq, std::move(file.event));
  }
}

void EventQueue::start(uint64_t seq, Event event) {
  entries_.at(seq).state = State::kRunning;
  ++running_;
  tasks_->add(kj::evalNow([&]() { return invoke_(std::move(event)); })
                  .then([this, seq](thatch::Status status) { ended(seq, status, ""); },
                        [this, seq](kj::Exception&& e) {
                          ended(seq, std::nullopt, e.getDescription().cStr());
                        }));
}

void EventQueue::ended(uint64_t seq, std::optional<thatch::Status> status, std::string error) {
  Entry& entry = entries_.at(seq);
  KJ_ASSERT(entry.state == State::kRunning);
  --running_;
  entry.lastOutcome = status ? thatch::statusName(*status) : "rejected: " + error;
  switch (status ? nextAfter(*status) : Next::kRetry) {
    case Next::kDone:
      forget(seq, true);
      break;
    case Next::kDrop:
      logDropped(entry, "not_retryable");
      forget(seq, false);
      break;
    case Next::kDefer:
      retryLater(seq, ++entry.deferrals);
      break;
    case Next::kRetry:
      entry.deferrals = 0;
      if (++entry.attempts >= std::max(limits_.maxAttempts, 1u)) {
        logDropped(entry, "max_attempts");
        forget(seq, false);
      } else {
        retryLater(seq, entry.attempts);
      }
      break;
  }
  dispatch();
}

void EventQueue::retryLater(uint64_t seq, unsigned nth) {
  entries_.at(seq).state = State::kRetryWait;
  tasks_->add(timer_.afterDelay(toKj(nthRetryDelay(limits_.retryDelay, nth))).then([this, seq]() {
    Entry& entry = entries_.at(seq);
    KJ_ASSERT(entry.state == State::kRetryWait);
    entry.state = State::kReady;
    ready_.insert(seq);
    dispatch();
  }));
}

void EventQueue::forget(uint64_t seq, bool succeeded) {
  auto it = entries_.find(seq);
  std::string requestId = std::move(it->second.requestId);
  entries_.erase(it);
  if (ended_) ended_(requestId, succeeded);
  writer_->remove(seq);
}

void EventQueue::logDropped(const Entry& entry, const char* reason) {
  log_.write("async_event_dropped",
             {{"function", entry.function},
              {"version", entry.version},
              {"request_id", entry.requestId},
              {"reason", reason},
              {"attempts", uint64_t(entry.attempts)},
              {"last_status", entry.lastOutcome.empty() ? "none" : entry.lastOutcome},
              {"age_ms", uint64_t(age(entry) / kj::MILLISECONDS)}});
}

kj::Duration EventQueue::age(const Entry& entry) const {
  return timer_.now() - entry.acceptedAt;
}

bool EventQueue::holds(const std::string& requestId) const {
  for (const auto& [seq, entry] : entries_)
    if (entry.requestId == requestId && entry.state != State::kStoring) return true;
  return false;
}

}  // namespace thatchd

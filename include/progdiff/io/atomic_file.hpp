#pragma once
// AtomicFile: replaces a file so that readers see either the old or the new contents, never a
// mixture, and a crash or an error part way leaves the old file as it was.
//
// The bytes go to a fresh temporary file in the target's directory (a rename is atomic only
// within one file system), which is flushed to disk before it is renamed over the target; the
// directory is flushed after, so the rename itself survives a power loss. POSIX only.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>

#include "progdiff/core/error.hpp"

namespace progdiff::io {

class AtomicFile {
 public:
  /// Creates the temporary file next to `target`; an IoError naming the path if it cannot.
  explicit AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
    static std::atomic<unsigned> counter{0};
    const std::filesystem::path directory = target_.has_parent_path() ? target_.parent_path() : ".";
    for (int attempt = 0; fd_ < 0; ++attempt) {
      std::string name = ".";  // hidden, and named after the target so a leftover is recognisable
      name += target_.filename().string();
      name += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
      temporary_ = directory / name;
      // 0666 lets the umask decide the permissions, as for a file opened the ordinary way.
      fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && (errno != EEXIST || attempt > 100)) fail("cannot create temporary file " + temporary_.string());
    }
  }

  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Abandons the temporary file unless commit() succeeded; the target stays as it was.
  ~AtomicFile() { discard(); }

  const std::filesystem::path& target() const { return target_; }
  const std::filesystem::path& temporary() const { return temporary_; }

  /// Appends `bytes` to the temporary file.
  void write(std::span<const std::byte> bytes) {
    require_open("write");
    const auto* p = reinterpret_cast<const char*>(bytes.data());
    std::size_t left = bytes.size();
    while (left > 0) {
      const ::ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_and_discard("cannot write " + temporary_.string());
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }

  /// Flushes the temporary file, renames it over the target and flushes the directory.
  void commit() {
    require_open("commit");
    if (::fsync(fd_) != 0) fail_and_discard("cannot flush " + temporary_.string());
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail_and_discard("cannot close " + temporary_.string());
    if (::rename(temporary_.c_str(), target_.c_str()) != 0)
      fail_and_discard("cannot rename " + temporary_.string() + " to " + target_.string());
    committed_ = true;
    const std::filesystem::path directory = target_.has_parent_path() ? target_.parent_path() : ".";
    const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) fail("cannot open directory " + directory.string() + " to flush the rename of " + target_.string());
    const int synced = ::fsync(dir);
    const int saved = errno;
    ::close(dir);
    errno = saved;
    // Some file systems cannot fsync a directory (EINVAL); the rename is then as durable as they allow.
    if (synced != 0 && errno != EINVAL)
      fail("cannot flush directory " + directory.string() + " after renaming to " + target_.string());
  }

 private:
  [[noreturn]] static void fail(const std::string& what) { throw IoError(what + ": " + std::strerror(errno)); }
  [[noreturn]] void fail_and_discard(const std::string& what) {
    const int saved = errno;
    discard();
    errno = saved;
    fail(what);
  }
  void require_open(const char* operation) const {
    if (fd_ < 0 || committed_)
      throw IoError("AtomicFile::" + std::string(operation) + ": " + target_.string() +
                    " is already committed or abandoned");
  }
  void discard() noexcept {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (!committed_ && !temporary_.empty()) {
      ::unlink(temporary_.c_str());
      temporary_.clear();
    }
  }

  std::filesystem::path target_;
  std::filesystem::path temporary_;
  int fd_ = -1;
  bool committed_ = false;
};

/// Replaces `path` with `bytes` atomically (see AtomicFile).
inline void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

}  // namespace progdiff::io

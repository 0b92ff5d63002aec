#pragma once
#include <stdexcept>
#include <string>

namespace progdiff {

/// Base of every exception the library throws; the message says what and where.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A tensor whose shape does not fit the operation; the message names both shapes.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// A malformed file or stream; the message names the file and the offset or key.
class FormatError : public Error {
 public:
  using Error::Error;
};

/// An invalid configuration value (a group count that does not divide the channels, ...).
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// An operating-system or device failure (open, write, rename, cudaMalloc, ...).
class IoError : public Error {
 public:
  using Error::Error;
};

template <class E = ConfigError>
inline void require(bool condition, const std::string& message) {
  if (!condition) throw E(message);
}

}  // namespace progdiff

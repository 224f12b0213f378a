#ifndef PAYORCH_COMMON_FILE_STAMP_H_
#define PAYORCH_COMMON_FILE_STAMP_H_

// Change detection for the files payorchd re-reads while running (caller
// policy, merchant configuration and keys). A stamp is taken through
// symlinks, so the atomic swap Kubernetes makes of a mounted Secret or
// ConfigMap (the `..data` symlink pointing at a new directory) shows as a new
// inode even when size and modification time are the same.

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace payorch {

struct FileStamp {
  dev_t device = 0;
  ino_t inode = 0;
  long long size = -1;
  long long mtime_ns = -1;
  bool operator==(const FileStamp& o) const {
    return device == o.device && inode == o.inode && size == o.size &&
           mtime_ns == o.mtime_ns;
  }
  bool operator!=(const FileStamp& o) const { return !(*this == o); }
};

// stat() of `path` (following symlinks); kNotFound naming the path and the
// errno text when it cannot be read.
absl::StatusOr<FileStamp> StampFile(const std::string& path);

// Stamps of a set of files, for "did any of them change": a file that is
// missing has a stamp of its own (default FileStamp), so its disappearance
// and its return are both changes.
using FileSetStamp = std::vector<std::pair<std::string, FileStamp>>;
FileSetStamp StampFiles(const std::vector<std::string>& paths);

}  // namespace payorch

#endif  // PAYORCH_COMMON_FILE_STAMP_H_

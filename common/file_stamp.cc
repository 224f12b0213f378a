#include "common/file_stamp.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace payorch {

absl::StatusOr<FileStamp> StampFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  FileStamp stamp;
  stamp.device = st.st_dev;
  stamp.inode = st.st_ino;
  stamp.size = static_cast<long long>(st.st_size);
  stamp.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL +
                   st.st_mtim.tv_nsec;
  return stamp;
}

FileSetStamp StampFiles(const std::vector<std::string>& paths) {
  FileSetStamp out;
  out.reserve(paths.size());
  for (const std::string& path : paths) {
    absl::StatusOr<FileStamp> stamp = StampFile(path);
    out.emplace_back(path, stamp.ok() ? *stamp : FileStamp{});
  }
  return out;
}

}  // namespace payorch

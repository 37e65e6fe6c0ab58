import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where a backup may be written: a new directory in a parent that already exists. The daemon usually runs as a
/// privileged user for whoever may use its control socket, so it must not create directory trees, write into a
/// directory that holds other files, or follow a path that ends in something other than a new name.
public enum BackupDestination {
    /// Why `path` cannot receive a backup, as the end of a sentence that names it ("… because it already
    /// exists"), or nil when it can.
    public static func problem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "it is not an absolute path" }
        guard !path.utf8.contains(0) else { return "it contains a NUL byte" }
        // Bytes, not Characters: a '/' joined to a combining mark after it is still a separator to the kernel.
        var bytes = Array(path.utf8)
        let slashByte = UInt8(ascii: "/")
        while bytes.count > 1, bytes.last == slashByte { bytes.removeLast() }
        guard let slash = bytes.lastIndex(of: slashByte) else { return "it is not an absolute path" }
        let name = bytes[(slash + 1)...]
        guard !name.isEmpty, !name.elementsEqual(".".utf8), !name.elementsEqual("..".utf8) else {
            return "it does not end in the name of a new directory"
        }
        let parent = slash == 0 ? "/" : String(decoding: bytes[..<slash], as: UTF8.self)
        let trimmed = String(decoding: bytes, as: UTF8.self)
        var status = stat()
        guard stat(parent, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            return "its parent directory \(parent) cannot be used (\(reason)); the parent must exist"
        }
        guard (status.st_mode & S_IFMT) == S_IFDIR else { return "its parent \(parent) is not a directory" }
        if lstat(String(trimmed), &status) == 0 {
            return "it already exists; a backup is written into a new directory, so it never mixes with other files"
        }
        guard errno == ENOENT else { return "it cannot be examined: \(String(cString: strerror(errno)))" }
        return nil
    }
}

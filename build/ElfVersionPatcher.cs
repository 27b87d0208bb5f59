// Marks a symbol-version requirement of an ELF64 shared library as weak (VER_FLG_WEAK).
//
// Why: TorchSharp 0.107's libLibTorchSharp.so asks for GLIBCXX_3.4.32, which the libstdc++ of
// Debian 12 / Ubuntu 22.04 lacks, so the dynamic loader refuses the library. The only symbol bound to
// that version is _ZSt21ios_base_library_initv, which is never called. A weak version requirement
// lets ld.so load the library where the version is missing; where it exists nothing changes.
//
// This file is compiled twice: into the MSBuild inline task of Directory.Build.targets (so every
// build, test, run, publish and pack output is patched) and into the test project (to test it).
// It must therefore stay dependency-free C# (no SharpTune types, no file-scoped namespace).
#nullable enable
using System;
using System.IO;
using System.Text;

namespace SharpTune.Build
{
    /// <summary>What <see cref="ElfVersionPatcher.MarkVersionWeak"/> did.</summary>
    public enum ElfPatchResult
    {
        /// <summary>The requirement was strong and is now weak.</summary>
        Patched,
        /// <summary>The requirement was already weak; the file was not written.</summary>
        AlreadyWeak,
        /// <summary>The file does not require that version; the file was not written.</summary>
        NotRequired,
    }

    /// <summary>Reads and edits the GNU version-needs table (.gnu.version_r) of an ELF64 little-endian file.</summary>
    public static class ElfVersionPatcher
    {
        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const ushort VerFlgWeak = 0x2;

        /// <summary>Sets VER_FLG_WEAK on every requirement of <paramref name="versionName"/>.</summary>
        public static ElfPatchResult MarkVersionWeak(string path, string versionName)
        {
            byte[] elf = File.ReadAllBytes(path);
            int found = 0, patched = 0;
            foreach (int flagsOffset in FindVernauxFlagOffsets(elf, path, versionName))
            {
                found++;
                ushort flags = BitConverter.ToUInt16(elf, flagsOffset);
                if ((flags & VerFlgWeak) == 0)
                {
                    BitConverter.GetBytes((ushort)(flags | VerFlgWeak)).CopyTo(elf, flagsOffset);
                    patched++;
                }
            }
            if (found == 0) return ElfPatchResult.NotRequired;
            if (patched == 0) return ElfPatchResult.AlreadyWeak;
            // Write to a temporary file and move it over, so a failure never leaves half a library.
            string temp = path + ".sharptune-patch";
            File.WriteAllBytes(temp, elf);
            File.Copy(temp, path, true);
            File.Delete(temp);
            return ElfPatchResult.Patched;
        }

        /// <summary>True when every requirement of <paramref name="versionName"/> in the file is weak (or there is none).</summary>
        public static bool IsVersionWeakOrAbsent(string path, string versionName)
        {
            byte[] elf = File.ReadAllBytes(path);
            foreach (int flagsOffset in FindVernauxFlagOffsets(elf, path, versionName))
                if ((BitConverter.ToUInt16(elf, flagsOffset) & VerFlgWeak) == 0) return false;
            return true;
        }

        /// <summary>True when the library defines the version, e.g. libstdc++.so.6 and "GLIBCXX_3.4.32".</summary>
        public static bool LibraryDefinesVersion(string libraryPath, string versionName)
        {
            // Version definitions are NUL-terminated strings in .dynstr; a byte search is enough here.
            byte[] data = File.ReadAllBytes(libraryPath);
            byte[] needle = Encoding.ASCII.GetBytes(versionName + "\0");
            return IndexOf(data, needle) >= 0;
        }

        /// <summary>Finds the system libstdc++.so.6 in the usual Linux locations, or null.</summary>
        public static string? FindSystemLibStdCxx()
        {
            string[] candidates =
            {
                "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
                "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
            };
            foreach (string candidate in candidates)
                if (File.Exists(candidate)) return candidate;
            return null;
        }

        private static System.Collections.Generic.List<int> FindVernauxFlagOffsets(byte[] elf, string path, string versionName)
        {
            var result = new System.Collections.Generic.List<int>();
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw new InvalidDataException($"{path}: not an ELF file.");
            if (elf[4] != 2 || elf[5] != 1)
                throw new InvalidDataException($"{path}: only 64-bit little-endian ELF files are supported.");

            long sectionHeaderOffset = BitConverter.ToInt64(elf, 0x28);
            int sectionHeaderSize = BitConverter.ToUInt16(elf, 0x3A);
            int sectionCount = BitConverter.ToUInt16(elf, 0x3C);
            if (sectionHeaderOffset <= 0 || sectionHeaderOffset + (long)sectionHeaderSize * sectionCount > elf.Length)
                throw new InvalidDataException($"{path}: section header table lies outside the file.");

            for (int i = 0; i < sectionCount; i++)
            {
                int header = checked((int)(sectionHeaderOffset + (long)i * sectionHeaderSize));
                if (BitConverter.ToUInt32(elf, header + 4) != ShtGnuVerneed) continue;
                long offset = BitConverter.ToInt64(elf, header + 0x18);
                int stringTableIndex = (int)BitConverter.ToUInt32(elf, header + 0x28);
                int entryCount = (int)BitConverter.ToUInt32(elf, header + 0x2C);
                int stringHeader = checked((int)(sectionHeaderOffset + (long)stringTableIndex * sectionHeaderSize));
                long stringsOffset = BitConverter.ToInt64(elf, stringHeader + 0x18);

                long verneed = offset;
                for (int n = 0; n < entryCount; n++)
                {
                    int auxCount = BitConverter.ToUInt16(elf, (int)verneed + 2);
                    long vernaux = verneed + BitConverter.ToUInt32(elf, (int)verneed + 8);
                    for (int a = 0; a < auxCount; a++)
                    {
                        long name = stringsOffset + BitConverter.ToUInt32(elf, (int)vernaux + 8);
                        if (ReadCString(elf, name) == versionName) result.Add((int)vernaux + 4);
                        uint nextAux = BitConverter.ToUInt32(elf, (int)vernaux + 12);
                        if (nextAux == 0) break;
                        vernaux += nextAux;
                    }
                    uint next = BitConverter.ToUInt32(elf, (int)verneed + 12);
                    if (next == 0) break;
                    verneed += next;
                }
            }
            return result;
        }

        private static string ReadCString(byte[] data, long offset)
        {
            int start = checked((int)offset);
            int end = start;
            while (end < data.Length && data[end] != 0) end++;
            return Encoding.ASCII.GetString(data, start, end - start);
        }

        private static int IndexOf(byte[] haystack, byte[] needle)
        {
            // netstandard2.0-compatible (the MSBuild inline task compiles against it).
            for (int i = 0; i + needle.Length <= haystack.Length; i++)
            {
                int j = 0;
                while (j < needle.Length && haystack[i + j] == needle[j]) j++;
                if (j == needle.Length) return i;
            }
            return -1;
        }
    }

#if !SHARPTUNE_TESTS
    /// <summary>MSBuild task: marks GLIBCXX_3.4.32 weak in each given libLibTorchSharp.so when the system lacks it.</summary>
    public sealed class PatchLibTorchSharp : Microsoft.Build.Framework.ITask
    {
        public Microsoft.Build.Framework.IBuildEngine? BuildEngine { get; set; }
        public Microsoft.Build.Framework.ITaskHost? HostObject { get; set; }

        /// <summary>The libraries to patch.</summary>
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Libraries { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        /// <summary>auto (patch where the system libstdc++ lacks the version), always, or never.</summary>
        public string Mode { get; set; } = "auto";

        public bool Execute()
        {
            const string version = "GLIBCXX_3.4.32";
            if (string.Equals(Mode, "never", StringComparison.OrdinalIgnoreCase)) return true;
            if (string.Equals(Mode, "auto", StringComparison.OrdinalIgnoreCase))
            {
                string? system = ElfVersionPatcher.FindSystemLibStdCxx();
                if (system != null && ElfVersionPatcher.LibraryDefinesVersion(system, version))
                {
                    Log($"SharpTune: {system} defines {version}; libLibTorchSharp.so left as shipped.");
                    return true;
                }
            }
            foreach (var item in Libraries)
            {
                string path = item.ItemSpec;
                try
                {
                    ElfPatchResult result = ElfVersionPatcher.MarkVersionWeak(path, version);
                    Log($"SharpTune: {path}: {version} {result}.");
                }
                catch (Exception e)
                {
                    BuildEngine?.LogErrorEvent(new Microsoft.Build.Framework.BuildErrorEventArgs(
                        "", "SHARPTUNE001", path, 0, 0, 0, 0,
                        $"Could not mark {version} weak in {path}: {e.Message}", "", "SharpTune"));
                    return false;
                }
            }
            return true;
        }

        private void Log(string message) =>
            BuildEngine?.LogMessageEvent(new Microsoft.Build.Framework.BuildMessageEventArgs(
                message, "", "SharpTune", Microsoft.Build.Framework.MessageImportance.Low));
    }
#endif
}

//! Text of the fake kernel files a host shows (`/proc/meminfo`, `/proc/cpuinfo`,
//! `/proc/swaps`, `/proc/modules`), in the kernel's own formats. The lab writes the
//! initial files; the emulators rewrite them when swap or modules change.

use crate::distro::Arch;

/// One active swap area, as `/proc/swaps` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapArea {
    pub path: String,
    pub kind: String,
    pub size_kib: u64,
    pub used_kib: u64,
    pub priority: i32,
}

/// `/proc/swaps` for these areas.
pub fn swaps(areas: &[SwapArea]) -> String {
    let mut out = String::from("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
    for a in areas {
        out.push_str(&format!(
            "{:<40}{}\t\t{}\t\t{}\t\t{}\n",
            a.path, a.kind, a.size_kib, a.used_kib, a.priority
        ));
    }
    out
}

/// Parses `/proc/swaps`.
pub fn parse_swaps(text: &str) -> Vec<SwapArea> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 5 {
                return None;
            }
            Some(SwapArea {
                path: f[0].to_string(),
                kind: f[1].to_string(),
                size_kib: f[2].parse().ok()?,
                used_kib: f[3].parse().ok()?,
                priority: f[4].parse().ok()?,
            })
        })
        .collect()
}

/// `/proc/meminfo` for a host with this much memory and swap. A host with swap
/// in use is under memory pressure: less memory is available than swap holds,
/// which is when the kernel refuses `swapoff`.
pub fn meminfo(memory_mib: u64, swap_total_kib: u64, swap_used_kib: u64) -> String {
    let total = memory_mib * 1024;
    let free = total * 7 / 10;
    let available = if swap_used_kib > 0 {
        (total * 8 / 10).min(swap_used_kib / 2)
    } else {
        total * 8 / 10
    };
    let fields: [(&str, u64); 20] = [
        ("MemTotal", total),
        ("MemFree", free),
        ("MemAvailable", available),
        ("Buffers", total / 50),
        ("Cached", total / 10),
        ("SwapCached", 0),
        ("Active", total / 10),
        ("Inactive", total / 20),
        ("SwapTotal", swap_total_kib),
        (
            "SwapFree",
            swap_total_kib - swap_used_kib.min(swap_total_kib),
        ),
        ("Dirty", 0),
        ("Writeback", 0),
        ("AnonPages", total / 20),
        ("Mapped", total / 40),
        ("Shmem", 1024),
        ("Slab", total / 50),
        ("CommitLimit", total / 2 + swap_total_kib),
        ("Committed_AS", total / 5),
        ("VmallocTotal", 34359738367),
        ("HugePages_Total", 0),
    ];
    let mut out = String::new();
    for (k, v) in fields {
        let label = format!("{k}:");
        if k.starts_with("HugePages") {
            out.push_str(&format!("{label:<16}{v:>8}\n"));
        } else {
            out.push_str(&format!("{label:<16}{v:>8} kB\n"));
        }
    }
    out.push_str("Hugepagesize:       2048 kB\n");
    out
}

/// Rewrites SwapTotal/SwapFree in a `/proc/meminfo` text.
pub fn meminfo_with_swap(text: &str, swap_total_kib: u64) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("SwapTotal:") {
            out.push_str(&format!("{:<16}{:>8} kB\n", "SwapTotal:", swap_total_kib));
        } else if line.starts_with("SwapFree:") {
            out.push_str(&format!("{:<16}{:>8} kB\n", "SwapFree:", swap_total_kib));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `/sys/devices/system/cpu/online` of a machine with `cpus` processors, all online:
/// the kernel's cpulist format (Documentation/ABI/testing/sysfs-devices-system-cpu),
/// `0` for one, `0-N` for more.
pub fn cpus_online(cpus: u32) -> String {
    match cpus {
        0 | 1 => "0\n".to_string(),
        n => format!("0-{}\n", n - 1),
    }
}

/// `/proc/cpuinfo` with `cpus` processors in the format of `arch`.
pub fn cpuinfo(arch: Arch, cpus: u32) -> String {
    let mut out = String::new();
    for i in 0..cpus {
        match arch {
            Arch::Amd64 => out.push_str(&format!(
                "processor\t: {i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n\
                 model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\nstepping\t: 4\n\
                 cpu MHz\t\t: 2394.374\ncache size\t: 28160 KB\nphysical id\t: 0\n\
                 siblings\t: {cpus}\ncore id\t\t: {i}\ncpu cores\t: {cpus}\napicid\t\t: {i}\n\
                 fpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: 22\nwp\t\t: yes\n\
                 flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat \
                 pse36 clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc \
                 rep_good nopl xtopology cpuid pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 \
                 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm bmi1 avx2 \
                 bmi2 avx512f avx512dq\nbogomips\t: 4788.74\nclflush size\t: 64\n\
                 cache_alignment\t: 64\naddress sizes\t: 46 bits physical, 48 bits virtual\n\
                 power management:\n\n"
            )),
            Arch::Arm64 => out.push_str(&format!(
                "processor\t: {i}\nBogoMIPS\t: 243.75\n\
                 Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp \
                 cpuid asimdrdm lrcpc dcpop asimddp ssbs\nCPU implementer\t: 0x41\n\
                 CPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n"
            )),
        }
    }
    out
}

/// One loaded module, as `/proc/modules` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedModule {
    pub name: String,
    pub size: u64,
    pub refcount: u32,
    pub used_by: Vec<String>,
}

/// `/proc/modules` for these modules.
pub fn modules(list: &[LoadedModule]) -> String {
    let mut out = String::new();
    for m in list {
        let deps = if m.used_by.is_empty() {
            "-".to_string()
        } else {
            format!("{},", m.used_by.join(","))
        };
        out.push_str(&format!(
            "{} {} {} {} Live 0x0000000000000000\n",
            m.name, m.size, m.refcount, deps
        ));
    }
    out
}

/// Parses `/proc/modules`.
pub fn parse_modules(text: &str) -> Vec<LoadedModule> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            let used_by = if f[3] == "-" {
                Vec::new()
            } else {
                f[3].split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            };
            Some(LoadedModule {
                name: f[0].to_string(),
                size: f[1].parse().ok()?,
                refcount: f[2].parse().ok()?,
                used_by,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_round_trip() {
        let areas = vec![SwapArea {
            path: "/swap.img".into(),
            kind: "file".into(),
            size_kib: 2097148,
            used_kib: 0,
            priority: -2,
        }];
        let text = swaps(&areas);
        assert!(text.starts_with("Filename"));
        assert_eq!(parse_swaps(&text), areas);
        assert!(parse_swaps(&swaps(&[])).is_empty());
    }

    #[test]
    fn meminfo_reports_memory_and_swap() {
        let m = meminfo(2048, 1024, 0);
        assert!(m.contains("MemTotal:        2097152 kB"), "{m}");
        assert!(m.contains("SwapFree:           1024 kB"), "{m}");
        let m = meminfo_with_swap(&m, 0);
        assert!(m.contains("SwapTotal:             0 kB"), "{m}");
    }

    #[test]
    fn full_swap_leaves_less_memory_available_than_it_holds() {
        let m = meminfo(1024, 2_097_152, 2_097_152);
        assert!(m.contains("SwapFree:              0 kB"), "{m}");
        assert!(m.contains("MemAvailable:     838860 kB"), "{m}");
    }

    #[test]
    fn cpus_online_is_a_cpulist() {
        assert_eq!(cpus_online(1), "0\n");
        assert_eq!(cpus_online(4), "0-3\n");
    }

    #[test]
    fn cpuinfo_has_one_block_per_cpu() {
        assert_eq!(cpuinfo(Arch::Amd64, 4).matches("processor\t:").count(), 4);
        assert!(cpuinfo(Arch::Arm64, 2).contains("CPU implementer"));
    }

    #[test]
    fn modules_round_trip() {
        let list = vec![
            LoadedModule {
                name: "br_netfilter".into(),
                size: 32768,
                refcount: 0,
                used_by: vec![],
            },
            LoadedModule {
                name: "bridge".into(),
                size: 311296,
                refcount: 1,
                used_by: vec!["br_netfilter".into()],
            },
        ];
        assert_eq!(parse_modules(&modules(&list)), list);
    }
}

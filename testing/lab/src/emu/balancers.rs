//! What the load balancer packages place: haproxy and nginx as their distributions ship
//! them, with the REAL programs (Debian 12's haproxy 2.6 and nginx 1.22, unpacked by
//! [`crate::realpkg`]) at `/usr/sbin/haproxy` and `/usr/sbin/nginx`, so that the emulated
//! systemd runs the real daemons (see `daemon`).
//!
//! Debian-family hosts get Debian's own unit files and default configuration (taken from
//! the unpacked packages); Red Hat-family hosts get the unit and configuration the EL
//! packages ship. Whatever version the host's package database says, the program is
//! Debian 12's build (`haproxy -v` says 2.6.12): the lab has no other.

use super::payload::Placed;
use super::repos::Format;

/// The libraries haproxy needs that the machine's /usr lacks (from liblua5.3-0 and
/// libopentracing-c-wrapper0); placed with haproxy, as apt would pull them in.
const HAPROXY_LIBS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/liblua5.3.so.0",
    "/usr/lib/x86_64-linux-gnu/liblua5.3.so.0.0.0",
    "/usr/lib/x86_64-linux-gnu/libopentracing-c-wrapper.so.0",
    "/usr/lib/x86_64-linux-gnu/libopentracing-c-wrapper.so.0.1.1",
    "/usr/lib/x86_64-linux-gnu/libopentracing.so.1",
    "/usr/lib/x86_64-linux-gnu/libopentracing.so.1.6.0",
];

const HAPROXY_ERRORS: &[&str] = &[
    "/etc/haproxy/errors/400.http",
    "/etc/haproxy/errors/403.http",
    "/etc/haproxy/errors/408.http",
    "/etc/haproxy/errors/500.http",
    "/etc/haproxy/errors/502.http",
    "/etc/haproxy/errors/503.http",
    "/etc/haproxy/errors/504.http",
];

/// nginx-common's configuration directories and files (Debian).
const NGINX_DIRS: &[&str] = &[
    "/etc/nginx/conf.d",
    "/etc/nginx/modules-available",
    "/etc/nginx/modules-enabled",
    "/etc/nginx/sites-available",
    "/etc/nginx/sites-enabled",
    "/etc/nginx/snippets",
];
const NGINX_CONFFILES: &[&str] = &[
    "/etc/nginx/nginx.conf",
    "/etc/nginx/mime.types",
    "/etc/nginx/proxy_params",
    "/etc/nginx/fastcgi_params",
    "/etc/nginx/fastcgi.conf",
    "/etc/nginx/scgi_params",
    "/etc/nginx/uwsgi_params",
    "/etc/nginx/koi-utf",
    "/etc/nginx/koi-win",
    "/etc/nginx/win-utf",
    "/etc/nginx/sites-available/default",
    "/etc/nginx/snippets/fastcgi-php.conf",
    "/etc/nginx/snippets/snakeoil.conf",
];

/// haproxy.service as the EL 9 package ships it: the configuration is checked before
/// the start (`ExecStartPre`), and `conf.d` is read too.
const EL_HAPROXY_SERVICE: &str = "[Unit]
Description=HAProxy Load Balancer
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=-/etc/sysconfig/haproxy
Environment=\"CONFIG=/etc/haproxy/haproxy.cfg\" \"PIDFILE=/run/haproxy.pid\" \"CFGDIR=/etc/haproxy/conf.d\"
ExecStartPre=/usr/sbin/haproxy -f $CONFIG -f $CFGDIR -c -q $OPTIONS
ExecStart=/usr/sbin/haproxy -Ws -f $CONFIG -f $CFGDIR -p $PIDFILE $OPTIONS
ExecReload=/usr/sbin/haproxy -f $CONFIG -f $CFGDIR -c -q $OPTIONS
ExecReload=/bin/kill -USR2 $MAINPID
KillMode=mixed
SuccessExitStatus=143
Type=notify

[Install]
WantedBy=multi-user.target
";

const EL_HAPROXY_SYSCONFIG: &str =
    "# Add extra options to the haproxy daemon here. This can be useful for
# specifying multiple configuration files with multiple -f options.
# See haproxy(1) for a complete list of options.
OPTIONS=\"\"
";

/// The EL package's example configuration (its frontend listens on *:5000).
const EL_HAPROXY_CFG: &str =
    "#---------------------------------------------------------------------
# Example configuration for a possible web application.  See the
# full configuration options online.
#
#   https://www.haproxy.org/download/2.4/doc/configuration.txt
#
#---------------------------------------------------------------------

#---------------------------------------------------------------------
# Global settings
#---------------------------------------------------------------------
global
    log         127.0.0.1 local2

    chroot      /var/lib/haproxy
    pidfile     /var/run/haproxy.pid
    maxconn     4000
    user        haproxy
    group       haproxy
    daemon

    # turn on stats unix socket
    stats socket /var/lib/haproxy/stats

#---------------------------------------------------------------------
# common defaults that all the 'listen' and 'backend' sections will
# use if not designated in their block
#---------------------------------------------------------------------
defaults
    mode                    http
    log                     global
    option                  httplog
    option                  dontlognull
    option http-server-close
    option forwardfor       except 127.0.0.0/8
    option                  redispatch
    retries                 3
    timeout http-request    10s
    timeout queue           1m
    timeout connect         10s
    timeout client          1m
    timeout server          1m
    timeout http-keep-alive 10s
    timeout check           10s
    maxconn                 3000

#---------------------------------------------------------------------
# main frontend which proxys to the backends
#---------------------------------------------------------------------
frontend main
    bind *:5000
    default_backend             app

#---------------------------------------------------------------------
# round robin balancing between the various backends
#---------------------------------------------------------------------
backend app
    balance     roundrobin
    server  app1 127.0.0.1:5001 check
    server  app2 127.0.0.1:5002 check
    server  app3 127.0.0.1:5003 check
    server  app4 127.0.0.1:5004 check
";

/// nginx.service as the EL package ships it.
const EL_NGINX_SERVICE: &str = "[Unit]
Description=The nginx HTTP and reverse proxy server
After=network-online.target remote-fs.target nss-lookup.target
Wants=network-online.target

[Service]
Type=forking
PIDFile=/run/nginx.pid
# Nginx will fail to start if /run/nginx.pid already exists but has the wrong
# SELinux context. This might happen when running `nginx -t` from the cmdline.
# https://bugzilla.redhat.com/show_bug.cgi?id=1268621
ExecStartPre=/usr/bin/rm -f /run/nginx.pid
ExecStartPre=/usr/sbin/nginx -t
ExecStart=/usr/sbin/nginx
ExecReload=/usr/sbin/nginx -s reload
KillSignal=SIGQUIT
TimeoutStopSec=5
KillMode=process
PrivateTmp=true

[Install]
WantedBy=multi-user.target
";

/// The EL package's nginx.conf (abridged comments; same directives).
const EL_NGINX_CONF: &str = "# For more information on configuration, see:
#   * Official English Documentation: http://nginx.org/en/docs/

user nginx;
worker_processes auto;
error_log /var/log/nginx/error.log;
pid /run/nginx.pid;

# Load dynamic modules. See /usr/share/doc/nginx/README.dynamic.
include /usr/share/nginx/modules/*.conf;

events {
    worker_connections 1024;
}

http {
    log_format  main  '$remote_addr - $remote_user [$time_local] \"$request\" '
                      '$status $body_bytes_sent \"$http_referer\" '
                      '\"$http_user_agent\" \"$http_x_forwarded_for\"';

    access_log  /var/log/nginx/access.log  main;

    sendfile            on;
    tcp_nopush          on;
    keepalive_timeout   65;
    types_hash_max_size 4096;

    include             /etc/nginx/mime.types;
    default_type        application/octet-stream;

    # Load modular configuration files from the /etc/nginx/conf.d directory.
    include /etc/nginx/conf.d/*.conf;

    server {
        listen       80;
        listen       [::]:80;
        server_name  _;
        root         /usr/share/nginx/html;

        # Load configuration files for the default server block.
        include /etc/nginx/default.d/*.conf;
    }
}
";

/// A real file placed where the Debian package has it.
fn same_path(path: &'static str) -> Placed {
    Placed::Real(path, &path[1..])
}

/// What `name` places on a host of `format` (empty: not a balancer package).
pub fn contents(name: &str, format: Format) -> Vec<Placed> {
    let deb = format == Format::Deb;
    let mut v = Vec::new();
    match (name, deb) {
        ("haproxy", _) => {
            v.push(same_path("/usr/sbin/haproxy"));
            v.extend(HAPROXY_LIBS.iter().map(|l| same_path(l)));
            v.push(Placed::Dir("/etc/haproxy"));
            v.push(Placed::Dir("/var/lib/haproxy"));
            v.push(Placed::Dir("/run/haproxy"));
            if deb {
                v.push(Placed::Real(
                    "/usr/lib/systemd/system/haproxy.service",
                    "lib/systemd/system/haproxy.service",
                ));
                v.push(Placed::RealConffile(
                    "/etc/haproxy/haproxy.cfg",
                    "etc/haproxy/haproxy.cfg",
                ));
                v.push(Placed::RealConffile(
                    "/etc/default/haproxy",
                    "etc/default/haproxy",
                ));
                v.push(Placed::Dir("/etc/haproxy/errors"));
                v.extend(
                    HAPROXY_ERRORS
                        .iter()
                        .map(|p| Placed::RealConffile(p, &p[1..])),
                );
            } else {
                v.push(Placed::File(
                    "/usr/lib/systemd/system/haproxy.service",
                    EL_HAPROXY_SERVICE,
                ));
                v.push(Placed::Conffile("/etc/haproxy/haproxy.cfg", EL_HAPROXY_CFG));
                v.push(Placed::Dir("/etc/haproxy/conf.d"));
                v.push(Placed::Conffile(
                    "/etc/sysconfig/haproxy",
                    EL_HAPROXY_SYSCONFIG,
                ));
            }
        }
        ("nginx", true) => {
            v.push(same_path("/usr/sbin/nginx"));
            v.push(Placed::Dir("/usr/lib/nginx/modules"));
            v.push(Placed::Link(
                "/usr/share/nginx/modules",
                "../../lib/nginx/modules",
            ));
            v.push(Placed::Dir("/var/lib/nginx"));
            v.push(Placed::Dir("/var/log/nginx"));
        }
        ("nginx-common", true) => {
            v.push(Placed::Real(
                "/usr/lib/systemd/system/nginx.service",
                "lib/systemd/system/nginx.service",
            ));
            v.extend(NGINX_DIRS.iter().map(|d| Placed::Dir(d)));
            v.extend(
                NGINX_CONFFILES
                    .iter()
                    .map(|p| Placed::RealConffile(p, &p[1..])),
            );
            // nginx-common's postinst enables the default site.
            v.push(Placed::Link(
                "/etc/nginx/sites-enabled/default",
                "/etc/nginx/sites-available/default",
            ));
            v.push(same_path("/usr/share/nginx/html/index.html"));
            v.push(same_path("/etc/default/nginx"));
        }
        ("libnginx-mod-stream", true) => {
            v.push(same_path("/usr/lib/nginx/modules/ngx_stream_module.so"));
            v.push(same_path(
                "/usr/share/nginx/modules-available/mod-stream.conf",
            ));
            v.push(Placed::Link(
                "/etc/nginx/modules-enabled/50-mod-stream.conf",
                "/usr/share/nginx/modules-available/mod-stream.conf",
            ));
        }
        ("nginx", false) => {
            v.push(same_path("/usr/sbin/nginx"));
            v.push(Placed::File(
                "/usr/lib/systemd/system/nginx.service",
                EL_NGINX_SERVICE,
            ));
            v.push(Placed::Dir("/etc/nginx/conf.d"));
            v.push(Placed::Dir("/etc/nginx/default.d"));
            v.push(Placed::Conffile("/etc/nginx/nginx.conf", EL_NGINX_CONF));
            v.push(Placed::RealConffile(
                "/etc/nginx/mime.types",
                "etc/nginx/mime.types",
            ));
            v.push(Placed::Dir("/usr/share/nginx/modules"));
            v.push(Placed::Dir("/usr/lib64/nginx/modules"));
            v.push(Placed::Dir("/var/lib/nginx"));
            v.push(Placed::Dir("/var/log/nginx"));
            v.push(same_path("/usr/share/nginx/html/index.html"));
        }
        ("nginx-mod-stream", false) => {
            v.push(Placed::Real(
                "/usr/lib64/nginx/modules/ngx_stream_module.so",
                "usr/lib/nginx/modules/ngx_stream_module.so",
            ));
            v.push(Placed::File(
                "/usr/share/nginx/modules/mod-stream.conf",
                "load_module \"/usr/lib64/nginx/modules/ngx_stream_module.so\";\n",
            ));
        }
        _ => {}
    }
    v
}

/// The system user a package's maintainer script creates, with its home.
pub fn system_user(name: &str, format: Format) -> Option<(&'static str, &'static str)> {
    match (name, format) {
        ("haproxy", _) => Some(("haproxy", "/var/lib/haproxy")),
        ("nginx", Format::Rpm) => Some(("nginx", "/var/lib/nginx")),
        _ => None,
    }
}

/// Adds a system user and its group to the host's /etc/passwd and /etc/group, as
/// `adduser --system --group` / `useradd -r` do (nothing if it exists).
pub fn add_system_user(inv: &super::Invocation, user: &str, home: &str) -> std::io::Result<()> {
    let passwd = inv.read("/etc/passwd").unwrap_or_default();
    if passwd.lines().any(|l| l.split(':').next() == Some(user)) {
        return Ok(());
    }
    let group = inv.read("/etc/group").unwrap_or_default();
    let used: Vec<u32> = passwd
        .lines()
        .chain(group.lines())
        .filter_map(|l| l.split(':').nth(2)?.parse().ok())
        .collect();
    let id = (100..1000).rev().find(|i| !used.contains(i)).unwrap_or(999);
    let mut p = passwd;
    if !p.is_empty() && !p.ends_with('\n') {
        p.push('\n');
    }
    p.push_str(&format!("{user}:x:{id}:{id}::{home}:/usr/sbin/nologin\n"));
    inv.write("/etc/passwd", &p)?;
    let mut g = group;
    if !g.is_empty() && !g.ends_with('\n') {
        g.push('\n');
    }
    g.push_str(&format!("{user}:x:{id}:\n"));
    inv.write("/etc/group", &g)
}

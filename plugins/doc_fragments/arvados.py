# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Options shared by everything in the collection that talks to an Arvados cluster or a Docker daemon."""

from __future__ import annotations


class ModuleDocFragment:
    # Connection to the Arvados API server: every option's description, and the one order its sources are read in.
    DOCUMENTATION = r"""
options:
  api_host:
    description:
      - Host name and optional port of the Arvados API server, for example V(zzzzz.arvadosapi.com) or V(127.0.0.1:8000).
      - When not set, the variable C(arvados_api_host), then E(ARVADOS_API_HOST), then C(ARVADOS_API_HOST) in
        C(~/.config/arvados/settings.conf), as the notes tell.
    type: str
  api_token:
    description:
      - The Arvados API token to act with. Objects are created and read with this token's permissions.
      - When not set, the variable C(arvados_api_token), then E(ARVADOS_API_TOKEN), then C(ARVADOS_API_TOKEN) in
        C(~/.config/arvados/settings.conf), as the notes tell.
      - Never pass it through a task's C(environment) keyword, which ansible-core prints at C(-vvv).
    type: str
  api_insecure:
    description:
      - Accept the API server's TLS certificate without verifying it. Only for test clusters with a self-signed certificate.
      - When not set, the variable C(arvados_api_insecure), then E(ARVADOS_API_HOST_INSECURE), then
        C(ARVADOS_API_HOST_INSECURE) in C(~/.config/arvados/settings.conf), as the notes tell.
    type: bool
  num_retries:
    description:
      - How many times a failed API request or Keep block write is retried, after a wait that doubles each time (for API
        requests a random wait of up to 2, 4, 8, ... seconds, as the Arvados SDK waits).
      - Answers 5xx, 408, 409, 423 and 429, refused or dropped connections and timeouts are retried. Certificate, name
        resolution, 401, 403, 404 and 422 errors are never retried.
      - Retries of an API request also stop at the limit that O(api_timeout) sets.
      - When not set, the variable C(arvados_num_retries), as the notes tell.
    type: int
    default: 5
  api_timeout:
    description:
      - Seconds to wait for one attempt of an API request (to connect, or for the answer) before it counts as failed and is retried.
      - Retries of an API request start only within twice this time of its first attempt, so a request that keeps failing
        ends within three times this whatever O(num_retries) allows. At the defaults, an API server that is down or
        answers too slowly makes the task fail within a minute.
      - When not set, the variable C(arvados_api_timeout), as the notes tell.
    type: int
    default: 20
notes:
  - >-
    The connection to Arvados is read the same way by every module, lookup and role of the collection: for each of
    O(api_host), O(api_token), O(api_insecure), O(num_retries) and O(api_timeout), the first of these sources that sets
    it wins.
    (1) The option: given to the task, through C(module_defaults) for the group C(group/arvados.cluster.arvados), or as
    a keyword of the lookup.
    (2) The variable C(arvados_api_host), C(arvados_api_token), C(arvados_api_insecure), C(arvados_num_retries) or
    C(arvados_api_timeout), templated, so that a value such as C("{{ vault_token }}") or a vaulted value works. The
    modules' action plugins read these on the controller and hand them to the module, wherever it runs.
    (3) The environment of the host that runs the code, E(ARVADOS_API_HOST), E(ARVADOS_API_TOKEN) and
    E(ARVADOS_API_HOST_INSECURE): the controller for the lookup and for a module whose code runs in the controller, the
    managed host for a module shipped to it.
    (4) For the lookup only, the keys C(api_host), C(api_token), C(api_insecure), C(num_retries) and C(api_timeout) of
    the C([arvados]) section of C(ansible.cfg).
    (5) C(ARVADOS_API_HOST), C(ARVADOS_API_TOKEN) and C(ARVADOS_API_HOST_INSECURE) in C(~/.config/arvados/settings.conf)
    on the host that runs the code, as the Arvados command-line tools read it.
    An option or a variable set to null counts as not set; O(num_retries) and O(api_timeout) then take their defaults.
"""

    # The same options' other sources for lookups, which read them through their configuration: the order is the notes'.
    PLUGINS = r"""
options:
  api_host:
    env:
      - name: ARVADOS_API_HOST
    ini:
      - section: arvados
        key: api_host
    vars:
      - name: arvados_api_host
  api_token:
    env:
      - name: ARVADOS_API_TOKEN
    ini:
      - section: arvados
        key: api_token
    vars:
      - name: arvados_api_token
  api_insecure:
    env:
      - name: ARVADOS_API_HOST_INSECURE
    ini:
      - section: arvados
        key: api_insecure
    vars:
      - name: arvados_api_insecure
  num_retries:
    ini:
      - section: arvados
        key: num_retries
    vars:
      - name: arvados_num_retries
  api_timeout:
    ini:
      - section: arvados
        key: api_timeout
    vars:
      - name: arvados_api_timeout
"""

    # Connection to a Docker daemon, for modules that read or pull images.
    DOCKER = r"""
options:
  docker_host:
    description:
      - The Docker daemon to talk to, for example V(unix:///var/run/docker.sock) or V(tcp://docker.example:2376).
      - If not set, the environment variable E(DOCKER_HOST) is used, then V(unix:///var/run/docker.sock).
    type: str
    aliases: [docker_url]
  docker_timeout:
    description:
      - Seconds to wait for a Docker API request. Saving a large image streams for longer; this bounds each read.
    type: int
    default: 120
  docker_tls:
    description:
      - Talk TLS to O(docker_host) without verifying the daemon's certificate unless O(docker_tls_verify) is set.
      - If not set, the environment variable E(DOCKER_TLS) is used.
    type: bool
    default: false
  docker_tls_verify:
    description:
      - Talk TLS to O(docker_host) and verify the daemon's certificate against O(docker_ca_path).
      - If not set, the environment variable E(DOCKER_TLS_VERIFY) is used.
    type: bool
    default: false
  docker_ca_path:
    description:
      - CA certificate that signed the daemon's certificate, read with O(docker_tls_verify=true).
      - If not set, C(ca.pem) in the folder E(DOCKER_CERT_PATH) names (else C(~/.docker)) when that file exists, as
        the C(docker) command line finds it.
    type: path
  docker_client_cert:
    description:
      - Client certificate presented to the daemon, for a daemon that requires one (C(dockerd --tlsverify)).
      - If not set, C(cert.pem) in the folder E(DOCKER_CERT_PATH) names (else C(~/.docker)) when that file exists.
    type: path
  docker_client_key:
    description:
      - Key of O(docker_client_cert).
      - If not set, C(key.pem) in the folder E(DOCKER_CERT_PATH) names (else C(~/.docker)) when that file exists.
    type: path
"""

# occipy in a container: `make dist && docker build -t occipy .` (or `make image`), then
#   docker run -p 8080:8080 -v occipy-data:/var/lib/occipy occipy
# The image installs the wheel from dist/ (the dashboard's files are inside it). The server binds
# 0.0.0.0 inside the container: without an authentication method that needs --allow-anonymous,
# given here as its environment form OCCIPY_ALLOW_ANONYMOUS=1 (docs/deploy.md); set an
# authentication method (docs/security.md) and OCCIPY_ALLOW_ANONYMOUS=0 to require sign-in.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# PIP_NO_INDEX=1 with dist/wheels/ holding every dependency builds without network access.
ARG PIP_NO_INDEX=
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OCCIPY_HOST=0.0.0.0 \
    OCCIPY_PORT=8080 \
    OCCIPY_DATA_DIR=/var/lib/occipy \
    OCCIPY_ALLOW_ANONYMOUS=1

COPY dist/ /tmp/dist/
RUN python3 -m venv /opt/occipy \
    && PIP_NO_INDEX="${PIP_NO_INDEX}" /opt/occipy/bin/pip install --no-cache-dir --disable-pip-version-check \
        --find-links /tmp/dist/wheels "$(ls /tmp/dist/occipy-*.whl)" \
    && rm -rf /tmp/dist \
    && useradd --system --user-group --home-dir /var/lib/occipy --create-home occipy \
    && /opt/occipy/bin/occipy --version

USER occipy
WORKDIR /var/lib/occipy
VOLUME ["/var/lib/occipy"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s \
    CMD ["/opt/occipy/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/-/' % os.environ.get('OCCIPY_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["/opt/occipy/bin/occipy"]
CMD ["serve"]

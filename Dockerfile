# The image every Airflow service of docker-compose.yaml runs: the official Airflow image with this
# project's requirements baked in at build time (no pip install at container start).
# The tag must match apache-airflow==... in requirements.txt (tests/test_compose_static.py checks);
# python3.11 because the pins in requirements.txt are for Python 3.11 (pyproject.toml).
FROM apache/airflow:3.3.2-python3.11

# Installing apache-airflow at the pinned version together with the rest keeps pip from moving
# Airflow itself (the official "extend the image" recipe).
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

# Mount points of the named volumes (ml-artifacts, airflow-auth): created here, owned by airflow
# with group 0 writable, so a new named volume starts with this ownership and any AIRFLOW_UID
# (always in group 0) can write the registry, data, predictions and reports.
USER root
RUN mkdir -p /opt/airflow/var /opt/airflow/auth /opt/airflow/logs \
    && chown -R airflow:0 /opt/airflow/var /opt/airflow/auth /opt/airflow/logs \
    && chmod -R g+rwX /opt/airflow/var /opt/airflow/auth /opt/airflow/logs
USER airflow

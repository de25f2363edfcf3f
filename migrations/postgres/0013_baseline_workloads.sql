-- What ran on Kubernetes at a baseline: the image as the pod template named it, the
-- digest its pods ran (status.containerStatuses[].imageID), and the ConfigMaps and
-- Secrets the pod template referred to (a JSON list of "configmap/NAME", "secret/NAME").
ALTER TABLE baselines ADD COLUMN image TEXT;
ALTER TABLE baselines ADD COLUMN digest TEXT;
ALTER TABLE baselines ADD COLUMN config_refs TEXT;

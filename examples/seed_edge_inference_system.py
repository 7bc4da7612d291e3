# The smart-camera class of seed 000 ("案例：智能摄像头边缘分析"), verbatim but for its import
# line (the seed relies on `paddle.inference` imported as `inference`). preprocess/postprocess
# are the user's to fill in: subclass it, as tests/inference/test_seed_samples.py does.
import edgedeploy.inference as inference


class EdgeInferenceSystem:
    def __init__(self, model_path):
        self.config = inference.Config(model_path)
        self.config.enable_use_gpu(100, 0)
        self.config.enable_memory_optim()
        self.predictor = inference.create_predictor(self.config)

    def process_frame(self, frame):
        # 预处理
        input_data = self.preprocess(frame)
        # 设置输入
        input_handle = self.predictor.get_input_handle("input")
        input_handle.copy_from_cpu(input_data)
        # 推理
        self.predictor.run()
        # 获取结果
        output_handle = self.predictor.get_output_handle("output")
        results = output_handle.copy_to_cpu()
        return self.postprocess(results)

    def preprocess(self, frame):
        # 图像预处理逻辑
        return processed_data  # noqa: F821 — the seed leaves this to the user

    def postprocess(self, results):
        # 结果后处理
        return final_results  # noqa: F821 — the seed leaves this to the user

# The Paddle Inference sample of seed 000 ("方案二：Paddle Inference高性能部署"), verbatim but for
# its import line: `import paddle.inference as inference` became the line below. Run it in a
# directory holding model.pdmodel + model.pdiparams; choose the engine with EDGEDEPLOY_ENGINE.
import edgedeploy.inference as inference
import numpy as np
# 配置推理参数
config = inference.Config("model.pdmodel", "model.pdiparams")
config.enable_use_gpu(100, 0)
config.enable_memory_optim()
config.switch_ir_optim(True)
# 创建预测器
predictor = inference.create_predictor(config)
# 准备输入数据
input_names = predictor.get_input_names()
input_handle = predictor.get_input_handle(input_names[0])
input_data = np.random.randn(1, 3, 224, 224).astype('float32')
input_handle.copy_from_cpu(input_data)
# 执行推理
predictor.run()
# 获取输出
output_names = predictor.get_output_names()
output_handle = predictor.get_output_handle(output_names[0])
output_data = output_handle.copy_to_cpu()
